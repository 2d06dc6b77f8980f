//! A camera's configuration backups as the `config_backup` job stores them
//! in the hot tier (`config-backups/{device}/{stamp}.json`, camfleet's
//! reading of its settings, and `{stamp}-{name}`, the camera's own backup
//! files): listed by when they were taken, two readings compared line by
//! line, a file downloaded. Technicians and admins, within their sites.

use bytes::Bytes;

use super::Console;
use super::recordings::Tiers;
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;

/// One run of the backup job for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSet {
    /// `20261206T020000Z`.
    pub stamp: String,
    /// camfleet's reading of the settings (JSON), when it was taken.
    pub snapshot: Option<String>,
    /// The camera's own files: (key, name, bytes).
    pub files: Vec<(String, String, u64)>,
}

/// A line of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Same(String),
    Removed(String),
    Added(String),
}

/// The most a restore sends to a camera (its backup files together).
const MAX_RESTORE_BYTES: u64 = 64 << 20;

/// Lines compared at most, per side.
const MAX_LINES: usize = 5000;

fn prefix(device_id: i32) -> String {
    format!("config-backups/{device_id}/")
}

/// `a` and `b` as lines, compared (longest common subsequence).
pub fn diff_lines(a: &str, b: &str) -> Result<Vec<DiffLine>> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("these backups are longer than {MAX_LINES} lines: download and compare them"),
        ));
    }
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: the common lines of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(n.max(m)));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(DiffLine::Same(a[i].to_string()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(DiffLine::Added(b[j].to_string()));
            j += 1;
        } else {
            out.push(DiffLine::Removed(a[i].to_string()));
            i += 1;
        }
    }
    Ok(out)
}

impl Console {
    fn backup_tier(tiers: &Tiers) -> Result<&std::sync::Arc<crate::storage::Storage>> {
        tiers.get("hot").ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "no storage tier \"hot\" is configured here",
            )
        })
    }

    /// A device's backups, newest first.
    pub async fn config_backups(
        &self,
        tiers: &Tiers,
        actor: &Actor,
        device_id: i32,
    ) -> Result<Vec<BackupSet>> {
        actor.require(Role::can_operate_devices)?;
        self.device_in_scope(actor, device_id).await?;
        Self::backup_sets(tiers, device_id).await
    }

    /// A device's backups as stored, newest first (no checks: the callers'
    /// part).
    async fn backup_sets(tiers: &Tiers, device_id: i32) -> Result<Vec<BackupSet>> {
        let p = prefix(device_id);
        let mut keys = Self::backup_tier(tiers)?.list(&p, 5000).await?;
        keys.sort();
        let mut sets: Vec<BackupSet> = Vec::new();
        for (key, size) in keys {
            let rest = &key[p.len().min(key.len())..];
            let Some(stamp) = rest.get(..16).filter(|s| s.ends_with('Z')) else {
                continue;
            };
            if sets.last().is_none_or(|s| s.stamp != stamp) {
                sets.push(BackupSet {
                    stamp: stamp.to_string(),
                    snapshot: None,
                    files: Vec::new(),
                });
            }
            let set = sets.last_mut().expect("pushed above");
            if rest.len() == 21 && rest.ends_with(".json") {
                set.snapshot = Some(key.clone());
            } else {
                let name = rest.get(17..).unwrap_or("").to_string();
                set.files.push((key.clone(), name, size));
            }
        }
        sets.reverse();
        Ok(sets)
    }

    /// One stored backup file of the device (its key must be the
    /// device's).
    pub async fn config_backup_file(
        &self,
        tiers: &Tiers,
        actor: &Actor,
        device_id: i32,
        key: &str,
    ) -> Result<Bytes> {
        actor.require(Role::can_operate_devices)?;
        self.device_in_scope(actor, device_id).await?;
        if !key.starts_with(&prefix(device_id)) || key.contains("..") {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no backup {key:?} of device {device_id}"),
            ));
        }
        Self::backup_tier(tiers)?.get(key).await
    }

    /// Give the camera back its own backup files of the run `stamp`
    /// (RestoreSystem; technicians and admins, within their sites, the
    /// device in service). camfleet's reading of the settings is not sent:
    /// it is for reading and comparing, and the camera would not know it.
    pub async fn restore_config_backup(
        &self,
        tiers: &Tiers,
        provisioner: &crate::fleet::provision::Provisioner,
        actor: &Actor,
        device_id: i32,
        stamp: &str,
    ) -> Result<String> {
        actor.require(Role::can_operate_devices)?;
        let d = self.device_in_scope(actor, device_id).await?;
        if d.retired_at.is_some() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "this device is retired; return it to service first",
            ));
        }
        let sets = Self::backup_sets(tiers, device_id).await?;
        let set = sets.iter().find(|s| s.stamp == stamp).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("no backup of {stamp:?} for device {device_id}"),
            )
        })?;
        if set.files.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "this backup holds only camfleet's reading of the settings: the camera gave no backup files of its own that night, so there is nothing to restore to it",
            ));
        }
        let total: u64 = set.files.iter().map(|(_, _, size)| size).sum();
        if total > MAX_RESTORE_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "this backup is {total} bytes; camfleet restores at most {MAX_RESTORE_BYTES} bytes in one call"
                ),
            ));
        }
        let tier = Self::backup_tier(tiers)?;
        let mut files = Vec::with_capacity(set.files.len());
        for (key, name, _) in &set.files {
            files.push(crate::onvif::config::BackupFile {
                name: name.clone(),
                data: tier.get(key).await?.to_vec(),
            });
        }
        provisioner
            .restore_backup(device_id, stamp, files, actor)
            .await
    }

    /// Two of the device's settings readings compared, older first.
    pub async fn config_backup_diff(
        &self,
        tiers: &Tiers,
        actor: &Actor,
        device_id: i32,
        a: &str,
        b: &str,
    ) -> Result<Vec<DiffLine>> {
        let text = |bytes: Bytes| String::from_utf8_lossy(&bytes).into_owned();
        let left = text(self.config_backup_file(tiers, actor, device_id, a).await?);
        let right = text(self.config_backup_file(tiers, actor, device_id, b).await?);
        diff_lines(&left, &right)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_compare_as_removed_added_and_same() {
        let d = diff_lines("a\nb\nc\nd", "a\nc\nx\nd").unwrap();
        assert_eq!(
            d,
            vec![
                DiffLine::Same("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Same("c".into()),
                DiffLine::Added("x".into()),
                DiffLine::Same("d".into()),
            ]
        );
        assert!(diff_lines("", "").unwrap().is_empty());
        assert_eq!(
            diff_lines("", "n").unwrap(),
            vec![DiffLine::Added("n".into())]
        );
    }
}
