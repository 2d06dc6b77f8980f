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

/// The file a `sqlite:` URL names (None for PostgreSQL or in-memory).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Held while a server runs on a SQLite database: SQLite serves one
/// writer process, so a second `serve` on the same file is refused rather
/// than left to fight over its locks (several nodes share PostgreSQL).
#[derive(Debug)]
pub struct ServerLock {
    _file: std::fs::File,
}

/// Take the server lock of `url`'s SQLite file (a `.serve-lock` beside
/// it); nothing to take for PostgreSQL.
pub fn lock_sqlite(url: &str) -> crate::error::Result<Option<ServerLock>> {
    use crate::error::{Error, ErrorKind};
    let Some(db) = sqlite_path(url) else {
        return Ok(None);
    };
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".serve-lock");
    let path = db.with_file_name(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Internal,
                format!("opening {}", path.display()),
                e,
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(ServerLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "another camfleet server is running on {} (SQLite serves one server at a time; to run several nodes, give them one PostgreSQL database with database_url)",
                db.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::with_source(
            ErrorKind::Internal,
            format!("locking {}", path.display()),
            e,
        )),
    }
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
        // Several nodes may start at once on one PostgreSQL: one migrates
        // (even the check creates the migrations table), the others wait
        // and then find nothing pending.
        let ran = with_advisory_lock(&db, MIGRATION_LOCK, async {
            if Migrator::get_pending_migrations(&db).await?.is_empty() {
                return Ok(false);
            }
            Migrator::up(&db, None).await?;
            Ok(true)
        })
        .await?;
        if !ran {
            return Ok(db);
        }
        // Connections that were open while a migration changed a table can
        // keep that table's old shape: SQLite re-prepares a statement on a
        // schema change but the driver keeps the old column list, and
        // PostgreSQL refuses a cached plan whose result changed. A fresh
        // pool sees only the new schema (seen as "Missing value for column
        // 'problem'" on a first start, one run in three).
        db.close().await?;
        return open(url).await;
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

/// The PostgreSQL advisory lock migrations run under ("camfleet"); the
/// cluster's leadership locks follow it.
pub const MIGRATION_LOCK: i64 = 0x6361_6d66_6c65_6574;

/// Run `f` while holding a PostgreSQL advisory lock (waiting for it); on
/// SQLite just run it. Migrations run under this, so two nodes starting
/// at once do not migrate twice.
pub async fn with_advisory_lock<T, F>(
    db: &DatabaseConnection,
    key: i64,
    f: F,
) -> std::result::Result<T, sea_orm::DbErr>
where
    F: std::future::Future<Output = std::result::Result<T, sea_orm::DbErr>>,
{
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return f.await;
    }
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(|e| sea_orm::DbErr::Custom(format!("taking a connection for the lock: {e}")))?
        .detach();
    sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut conn)
        .await
        .map_err(|e| sea_orm::DbErr::Custom(format!("waiting for the lock: {e}")))?;
    let out = f.await;
    // Closing the session lets go of the lock whatever happened.
    let _ = sea_orm::sqlx::Connection::close(conn).await;
    out
}

/// Bring the schema up to date; returns how many migrations ran.
pub async fn migrate(url: &str) -> Result<usize, DbErr> {
    let db = open(url).await?;
    with_advisory_lock(&db, MIGRATION_LOCK, async {
        let pending = Migrator::get_pending_migrations(&db).await?.len();
        Migrator::up(&db, None).await?;
        Ok(pending)
    })
    .await
}

async fn open(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        sqlite_process_config();
        // One writer at a time is SQLite's nature: WAL lets readers go on
        // while it writes, and the busy timeout queues writers instead of
        // failing them.
        opts.max_connections(4).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .create_if_missing(true)
                // Reads go through mmap (pages shared by every
                // connection, counted once); each connection's own page
                // cache holds what mmap cannot serve: pages written and
                // still in the WAL. Under a steady write load (health
                // samples) every connection fills its cache to the cap
                // with them, so the cap is the memory: 2 MiB each (the
                // one-hour soak rose by the 4 x 8 MiB it had before).
                // The map counts in RSS and grows with the file; without
                // it the device list costs 14 % more CPU a request
                // (BENCHMARKS.md, soak, session 12).
                .pragma("cache_size", "-2048")
                .pragma("mmap_size", "268435456")
        });
    } else {
        // Scaled to the machine rather than fixed: past a few connections
        // per core, more only queue inside the server (16 backends on two
        // cores raised the device list's p99 under 64 clients). Eight at
        // least, so a long export or migration never starves the pollers.
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get() as u32);
        opts.max_connections((cores * 4).clamp(8, 64));
    }
    Database::connect(opts).await
}

/// An in-memory SQLite database with the schema (tests).
pub async fn memory() -> Result<DatabaseConnection, DbErr> {
    sqlite_process_config();
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

/// Process-wide SQLite settings, made once before SQLite initializes
/// (afterwards SQLite refuses them with SQLITE_MISUSE and nothing else
/// happens):
/// - no allocation statistics: SQLite keeps them behind one global mutex
///   taken on every allocation, the hottest lock of a busy device list
///   (seen with `perf` under `benches/device_list.sh`); camfleet never
///   reads them;
/// - SQLite allocates through mimalloc, the allocator the rest of camfleet
///   uses, instead of the C library's: glibc's `malloc_consolidate` and
///   friends were a fifth of camfleet's CPU under that benchmark.
fn sqlite_process_config() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: each sqlite3_config call passes the argument its option
        // takes (an int; a pointer to a method table SQLite copies); they
        // run once, before this process opens any connection here.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0i32)
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(rc, "SQLite was already initialized; its settings stay");
            return;
        }
        if cfg!(feature = "system-alloc") {
            return; // heap profiling: SQLite keeps malloc, where the profiler sees it
        }
        let methods = sqlite_alloc::methods();
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MALLOC,
                &methods as *const libsqlite3_sys::sqlite3_mem_methods,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(rc, "SQLite keeps the C library's allocator");
        }
    });
}

/// SQLite's allocator methods over mimalloc (linked by the `mimalloc`
/// crate, camfleet's global allocator). mimalloc aligns to 16 bytes, more
/// than the 8 SQLite asks for, and knows each block's size, which SQLite's
/// `xSize` needs.
mod sqlite_alloc {
    use std::ffi::{c_int, c_void};

    use libmimalloc_sys::{mi_free, mi_malloc, mi_realloc};

    // In the same static library as the three above; the crate declares
    // it only behind its `extended` feature.
    unsafe extern "C" {
        fn mi_usable_size(p: *const c_void) -> usize;
    }

    unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
        match usize::try_from(n) {
            // SAFETY: a plain allocation of n > 0 bytes.
            Ok(n) if n > 0 => unsafe { mi_malloc(n) },
            _ => std::ptr::null_mut(),
        }
    }

    unsafe extern "C" fn x_free(p: *mut c_void) {
        // SAFETY: SQLite frees only what x_malloc / x_realloc returned.
        unsafe { mi_free(p) }
    }

    unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        match usize::try_from(n) {
            // SAFETY: p came from x_malloc / x_realloc (SQLite's contract).
            Ok(n) if n > 0 => unsafe { mi_realloc(p, n) },
            _ => std::ptr::null_mut(),
        }
    }

    unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
        if p.is_null() {
            return 0;
        }
        // SAFETY: p is a live block from x_malloc / x_realloc.
        let n = unsafe { mi_usable_size(p) };
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }

    unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
        // Multiples of 8, as SQLite's own allocator rounds.
        n.saturating_add(7) & !7
    }

    unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
        libsqlite3_sys::SQLITE_OK
    }

    unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

    pub fn methods() -> libsqlite3_sys::sqlite3_mem_methods {
        libsqlite3_sys::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn the_sqlite_file_is_read_off_the_url() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/camfleet/camfleet.db?mode=rwc"),
            Some(std::path::PathBuf::from("/var/lib/camfleet/camfleet.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:data/camfleet.db"),
            Some(std::path::PathBuf::from("data/camfleet.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://cf@db/cf"), None);
    }

    #[test]
    fn one_server_lock_per_file() {
        let dir = std::env::temp_dir().join(format!("camfleet-lock-{}", uuid::Uuid::new_v4()));
        let url = sqlite_url(&dir);
        let held = lock_sqlite(&url).unwrap();
        assert!(held.is_some());
        let e = lock_sqlite(&url).unwrap_err();
        assert!(e.message.contains("another camfleet server"), "{e}");
        drop(held);
        assert!(lock_sqlite(&url).unwrap().is_some());
        assert!(lock_sqlite("postgres://cf@db/cf").unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
