//! The database: sea-orm entities and the connection. SQLite by default (one
//! file in the data directory, WAL, busy timeout, foreign keys on), or
//! PostgreSQL when given a `postgres://` URL. Migrations run on connect.
//!
//! Only the fleet services and the web layer use this module.

pub mod entities;

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// `sqlite://` URL for a database file inside `data_dir`.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("camfleet.db").display()
    )
}

/// Connect and bring the schema up to date.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, true).await
}

/// Connect; migrate when `migrate`, or else refuse a schema that is behind
/// this build (the operator runs `camfleet migrate` first).
pub async fn connect_with(url: &str, migrate: bool) -> Result<DatabaseConnection, DbErr> {
    let db = open(url).await?;
    if migrate {
        Migrator::up(&db, None).await?;
    } else {
        let pending = Migrator::get_pending_migrations(&db).await?.len();
        if pending > 0 {
            return Err(DbErr::Custom(format!(
                "the database schema is {pending} migration(s) behind this camfleet; run `camfleet migrate` (or start without --no-migrate)"
            )));
        }
    }
    Ok(db)
}

/// Bring the schema up to date; returns how many migrations ran.
pub async fn migrate(url: &str) -> Result<usize, DbErr> {
    let db = open(url).await?;
    let pending = Migrator::get_pending_migrations(&db).await?.len();
    Migrator::up(&db, None).await?;
    Ok(pending)
}

async fn open(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        sqlite_without_memstatus();
        // One writer at a time is SQLite's nature: WAL lets readers go on
        // while it writes, and the busy timeout queues writers instead of
        // failing them.
        opts.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .create_if_missing(true)
                // Reads go through mmap (pages shared by every
                // connection, counted once); each connection's own page
                // cache stays small (8 MiB), or eight of them caching the
                // same pages add up (seen in `camfleet bench poll`).
                .pragma("cache_size", "-8192")
                .pragma("mmap_size", "268435456")
        });
    } else {
        opts.max_connections(16);
    }
    Database::connect(opts).await
}

/// An in-memory SQLite database with the schema (tests).
pub async fn memory() -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new("sqlite::memory:".to_string());
    // One connection: every connection to :memory: is a separate database.
    opts.sqlx_logging(false)
        .max_connections(1)
        .min_connections(1);
    opts.map_sqlx_sqlite_opts(|o| o.foreign_keys(true));
    let db = Database::connect(opts).await?;
    Migrator::up(&db, None).await?;
    Ok(db)
}

/// Is the database reachable (health check)?
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

/// SQLite keeps process-wide allocation statistics by default, behind one
/// global mutex taken on every allocation: with several connections on
/// several threads that mutex is the hottest lock of a busy device list
/// (seen with `perf` under `benches/device_list.sh`). camfleet never reads
/// those statistics. Must run before SQLite initializes; afterwards SQLite
/// refuses the change (SQLITE_MISUSE) and nothing else happens.
fn sqlite_without_memstatus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int;
        // it is called once, before this process opens any connection here.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0i32)
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialized; memory statistics stay on"
            );
        }
    });
}
