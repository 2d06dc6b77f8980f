//! Database migrations for camfleet, one file per migration.
//!
//! The schema itself arrives with the web app (issue 3); this crate exists from
//! the start so the workspace shape, the migrator and its tests are in place.
pub use sea_orm_migration::prelude::*;

mod m20261126_000001_init;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261126_000001_init::Migration)]
    }
}
