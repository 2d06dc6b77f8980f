//! sea-orm entities, one file per table, matching `migrations/`. Model logic
//! lives in the fleet services, not here.

pub mod alert;
pub mod alert_history;
pub mod alert_rule;
pub mod api_token;
pub mod audit_log;
pub mod backfill;
pub mod credential;
pub mod delivery;
pub mod device;
pub mod device_event;
pub mod device_lease;
pub mod device_profile;
pub mod device_transition;
pub mod discovery_result;
pub mod discovery_run;
pub mod firmware_image;
pub mod firmware_rollout;
pub mod health_rollup;
pub mod health_sample;
pub mod job;
pub mod job_run;
pub mod login_throttle;
pub mod node;
pub mod notify_channel;
pub mod provision_item;
pub mod provision_profile;
pub mod provision_task;
pub mod recording;
pub mod rollout_device;
pub mod session;
pub mod site;
pub mod user;
pub mod user_site;
