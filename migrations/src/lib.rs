//! Database migrations for camfleet, one file per migration.
//!
//! Each file is one step; never edit a migration that has shipped — add one.
pub use sea_orm_migration::prelude::*;

mod m20261126_000001_init;
mod m20261126_000002_fleet;
mod m20261126_000003_device_search;
mod m20261126_000004_access;
mod m20261126_000005_search_index;
mod m20261126_000006_health;
mod m20261126_000007_alerts;
mod m20261126_000008_events;
mod m20261126_000009_provision;
mod m20261126_000010_firmware;
mod m20261126_000011_jobs;
mod m20261126_000012_recording_policy;
mod m20261126_000013_backfill;
mod m20261126_000014_record_transport;
mod m20261126_000015_seed_backfill_job;
mod m20261126_000016_discovery_interfaces;
mod m20261206_000017_access;
mod m20261206_000018_list_indexes;
mod m20261206_000019_drop_prefix_indexes;
mod m20261206_000020_rule_problems;
mod m20261206_000021_site_time_zone;
mod m20261206_000022_samples_by_time;
mod m20261206_000023_cluster;
mod m20261206_000024_rollups_by_time;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_init::Migration),
            Box::new(m20261126_000002_fleet::Migration),
            Box::new(m20261126_000003_device_search::Migration),
            Box::new(m20261126_000004_access::Migration),
            Box::new(m20261126_000005_search_index::Migration),
            Box::new(m20261126_000006_health::Migration),
            Box::new(m20261126_000007_alerts::Migration),
            Box::new(m20261126_000008_events::Migration),
            Box::new(m20261126_000009_provision::Migration),
            Box::new(m20261126_000010_firmware::Migration),
            Box::new(m20261126_000011_jobs::Migration),
            Box::new(m20261126_000012_recording_policy::Migration),
            Box::new(m20261126_000013_backfill::Migration),
            Box::new(m20261126_000014_record_transport::Migration),
            Box::new(m20261126_000015_seed_backfill_job::Migration),
            Box::new(m20261126_000016_discovery_interfaces::Migration),
            Box::new(m20261206_000017_access::Migration),
            Box::new(m20261206_000018_list_indexes::Migration),
            Box::new(m20261206_000019_drop_prefix_indexes::Migration),
            Box::new(m20261206_000020_rule_problems::Migration),
            Box::new(m20261206_000021_site_time_zone::Migration),
            Box::new(m20261206_000022_samples_by_time::Migration),
            Box::new(m20261206_000023_cluster::Migration),
            Box::new(m20261206_000024_rollups_by_time::Migration),
        ]
    }
}
