//! A text index for the device search (substring search on `search_text`):
//! SQLite gets an FTS5 table with the trigram tokenizer, kept in sync by
//! triggers (external content, so the text is not stored twice);
//! PostgreSQL gets a pg_trgm GIN index, which serves `LIKE '%…%'` — when
//! the extension can be created (it is "trusted" from PostgreSQL 13, so
//! the database owner may; otherwise search stays a scan and still works).
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE IF NOT EXISTS devices_fts USING fts5(search_text, content='devices', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS devices_fts_ai AFTER INSERT ON devices BEGIN \
       INSERT INTO devices_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS devices_fts_ad AFTER DELETE ON devices BEGIN \
       INSERT INTO devices_fts(devices_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS devices_fts_au AFTER UPDATE OF search_text ON devices BEGIN \
       INSERT INTO devices_fts(devices_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text); \
       INSERT INTO devices_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO devices_fts(devices_fts) VALUES ('rebuild')",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS devices_fts_ai",
    "DROP TRIGGER IF EXISTS devices_fts_ad",
    "DROP TRIGGER IF EXISTS devices_fts_au",
    "DROP TABLE IF EXISTS devices_fts",
];

const PG_UP: &str = "DO $$ BEGIN \
    CREATE EXTENSION IF NOT EXISTS pg_trgm; \
    CREATE INDEX IF NOT EXISTS idx_devices_search_trgm ON devices USING gin (search_text gin_trgm_ops); \
  EXCEPTION WHEN OTHERS THEN \
    RAISE NOTICE 'pg_trgm unavailable (%); device search stays a scan', SQLERRM; \
  END $$";

const PG_DOWN: &str = "DROP INDEX IF EXISTS idx_devices_search_trgm";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        match m.get_database_backend() {
            DatabaseBackend::Sqlite => {
                for sql in SQLITE_UP {
                    db.execute_unprepared(sql).await?;
                }
            }
            DatabaseBackend::Postgres => {
                db.execute_unprepared(PG_UP).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        match m.get_database_backend() {
            DatabaseBackend::Sqlite => {
                for sql in SQLITE_DOWN {
                    db.execute_unprepared(sql).await?;
                }
            }
            DatabaseBackend::Postgres => {
                db.execute_unprepared(PG_DOWN).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
