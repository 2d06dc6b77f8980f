//! The fleet services: the domain. Each composes the protocol leaves
//! (`onvif`, `discovery`) with the database; the web layer calls them.

pub mod access;
pub mod alerting;
pub mod audit;
pub mod backfill;
pub mod backup;
pub mod cluster;
pub mod console;
pub mod csv;
pub mod discovery;
pub mod events;
pub mod firmware;
pub mod health;
pub mod import;
pub mod inventory;
pub mod jobs;
pub mod notifier;
pub mod policies;
pub mod poller;
pub mod progress;
pub mod provision;
pub mod recording;
pub mod recordings;
pub mod samples;
pub mod schedule;
pub mod sessions;
pub mod sites;
pub mod throttle;
pub mod tokens;
pub mod users;
