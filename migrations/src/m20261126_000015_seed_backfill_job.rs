//! Installations that already have scheduled jobs get the new default
//! "Edge backfill" job once (fresh installations get it from
//! `Jobs::ensure_defaults`). A migration runs once, so a job deleted later
//! stays deleted.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Name,
    Kind,
    Schedule,
    Timezone,
    Params,
    Enabled,
    MissedPolicy,
    LastScheduledAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let backend = m.get_database_backend();
        let count = |sql: &str| {
            let stmt = Statement::from_string(backend, sql.to_string());
            async move {
                Ok::<i64, DbErr>(match db.query_one_raw(stmt).await? {
                    Some(row) => row.try_get::<i64>("", "n")?,
                    None => 0,
                })
            }
        };
        let jobs = count("SELECT COUNT(*) AS n FROM jobs").await?;
        let backfills =
            count("SELECT COUNT(*) AS n FROM jobs WHERE kind = 'edge_backfill'").await?;
        if jobs == 0 || backfills > 0 {
            return Ok(());
        }
        let insert = Query::insert()
            .into_table(Jobs::Table)
            .columns([
                Jobs::Name,
                Jobs::Kind,
                Jobs::Schedule,
                Jobs::Timezone,
                Jobs::Params,
                Jobs::Enabled,
                Jobs::MissedPolicy,
                Jobs::LastScheduledAt,
                Jobs::CreatedAt,
                Jobs::UpdatedAt,
            ])
            .values([
                "Edge backfill".into(),
                "edge_backfill".into(),
                "*/10 * * * *".into(),
                "UTC".into(),
                Expr::cust("'{}'"),
                true.into(),
                "skip".into(),
                Expr::current_timestamp(),
                Expr::current_timestamp(),
                Expr::current_timestamp(),
            ])
            .map_err(|e| DbErr::Custom(e.to_string()))?
            .to_owned();
        m.exec_stmt(insert).await
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        // The job is the user's now; leave it.
        Ok(())
    }
}
