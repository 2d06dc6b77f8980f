//! Backing up an installation and restoring it into a fresh data directory.
//!
//! A backup is a directory holding what a restore needs to bring the same
//! fleet back: the SQLite database (an online, consistent copy made with
//! `VACUUM INTO` while camfleet runs), the secret key that seals the camera
//! passwords (without it they cannot be opened), and `manifest.json` with
//! what was taken and each file's SHA-256. Recordings are not in it: they
//! live in the storage tier, which has its own durability (a bucket's
//! versioning, or the local directory's own backup).
//!
//! For PostgreSQL the database is the operator's to dump (`pg_dump`); the
//! backup still takes the key and the manifest, and says what to run.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, PaginatorTrait};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::secrets::KEY_FILE;

pub const MANIFEST: &str = "manifest.json";
pub const DB_FILE: &str = "camfleet.db";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub camfleet_version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub devices: u64,
    /// File name → SHA-256 hex, for every file taken.
    pub files: std::collections::BTreeMap<String, String>,
    /// The key came from CAMFLEET_SECRET_KEY and is not in the backup.
    pub key_from_environment: bool,
    /// What the operator must still do (PostgreSQL: pg_dump).
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct BackupReport {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

fn internal(what: String, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with_source(ErrorKind::Internal, what, e)
}

fn sha256_file(p: &Path) -> Result<String> {
    crate::storage::sha256_file(p)
        .map(|(_, sha256)| sha256)
        .map_err(|e| internal(format!("reading {}", p.display()), e))
}

fn private_copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map_err(|e| internal(format!("copying {} to {}", from.display(), to.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// Take a backup of the installation whose database is `db` and whose
/// data directory is `data_dir`, into a new directory under `to`
/// (`camfleet-backup-YYYYMMDDTHHMMSSZ`).
pub async fn backup(
    db: &DatabaseConnection,
    data_dir: &Path,
    to: &Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BackupReport> {
    let dir = to.join(format!("camfleet-backup-{}", now.format("%Y%m%dT%H%M%SZ")));
    if dir.exists() {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("{} exists already", dir.display()),
        ));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| internal(format!("creating {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut files = std::collections::BTreeMap::new();
    let mut notes = Vec::new();
    let backend = db.get_database_backend();
    let database = match backend {
        DatabaseBackend::Sqlite => {
            let path = dir.join(DB_FILE);
            let quoted = path.display().to_string().replace('\'', "''");
            db.execute_unprepared(&format!("VACUUM INTO '{quoted}'"))
                .await?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
            files.insert(DB_FILE.to_string(), sha256_file(&path)?);
            "sqlite"
        }
        _ => {
            notes.push(
                "PostgreSQL: dump the database yourself, e.g. `pg_dump --format=custom --file=camfleet.pgdump \"$CAMFLEET_DATABASE_URL\"`, and keep it with this directory; restore with `pg_restore --clean --dbname=…` before `camfleet restore`."
                    .into(),
            );
            "postgres"
        }
    };
    let key_from_environment = std::env::var_os(crate::secrets::KEY_ENV).is_some();
    if key_from_environment {
        notes.push(format!(
            "The secret key comes from {}: keep that value with this backup; without it the camera passwords cannot be opened.",
            crate::secrets::KEY_ENV
        ));
    } else {
        let key = data_dir.join(KEY_FILE);
        private_copy(&key, &dir.join(KEY_FILE))?;
        files.insert(KEY_FILE.to_string(), sha256_file(&dir.join(KEY_FILE))?);
    }
    let devices = crate::db::entities::device::Entity::find()
        .count(db)
        .await?;
    let manifest = Manifest {
        format: 1,
        camfleet_version: env!("CARGO_PKG_VERSION").into(),
        created_at: now,
        database: database.into(),
        devices,
        files,
        key_from_environment,
        notes,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| internal("writing the manifest".into(), e))?;
    let mpath = dir.join(MANIFEST);
    std::fs::write(&mpath, text)
        .map_err(|e| internal(format!("writing {}", mpath.display()), e))?;
    Ok(BackupReport { dir, manifest })
}

/// Check a backup directory: its manifest, and every file against its
/// checksum.
pub fn verify(from: &Path) -> Result<Manifest> {
    let mpath = from.join(MANIFEST);
    let text = std::fs::read_to_string(&mpath).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidArgument,
            format!(
                "{} is not a camfleet backup (no {MANIFEST})",
                from.display()
            ),
            e,
        )
    })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{}: {e}", mpath.display()),
        )
    })?;
    if m.format != 1 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("backup format {} is not one this camfleet reads", m.format),
        ));
    }
    for (name, want) in &m.files {
        // Only plain names: a manifest must not point outside its directory.
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("manifest names an odd file {name:?}"),
            ));
        }
        let got = sha256_file(&from.join(name))?;
        if &got != want {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{name}: checksum mismatch (the backup is damaged)"),
            ));
        }
    }
    Ok(m)
}

/// Restore a backup into `data_dir`, which must not hold a database or a
/// key yet (unless `force`). The storage tier is not touched.
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> Result<Manifest> {
    let m = verify(from)?;
    crate::app::ensure_data_dir(data_dir)?;
    for name in m.files.keys() {
        let target = data_dir.join(name);
        if target.exists() && !force {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} exists: restore into a fresh data directory, or pass --force to overwrite",
                    target.display()
                ),
            ));
        }
    }
    for name in m.files.keys() {
        let target = data_dir.join(name);
        if name == DB_FILE {
            // A stale WAL beside an overwritten database would be replayed.
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(data_dir.join(format!("{DB_FILE}{ext}")));
            }
        }
        private_copy(&from.join(name), &target)?;
    }
    Ok(m)
}
