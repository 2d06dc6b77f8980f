//! The recordings ledger and what is done from it: retention by age and
//! by bytes per device, site and tier, the emergency purge when free space
//! runs low, migration between tiers, and scrubbing.
//!
//! The ledger is the source of truth: only objects it lists are ever
//! deleted, and sizes come from it, never from listing the store. An
//! object is deleted before its ledger row, so a crash between the two
//! leaves a row the scrub reports as missing — never an orphan nobody
//! would delete.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use crate::db::entities::recording;
use crate::error::Result;
use crate::storage::Storage;

/// Retention for one tier. Every limit is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    #[serde(default = "hot")]
    pub tier: String,
    pub max_age_days: Option<u32>,
    pub max_bytes_per_device: Option<i64>,
    pub max_bytes_per_site: Option<i64>,
    pub max_bytes_tier: Option<i64>,
    /// Below this much free space, the oldest segments go (emergency).
    pub min_free_bytes: Option<i64>,
}

fn hot() -> String {
    "hot".into()
}

/// A ledger row as retention needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub id: i64,
    pub device_id: i32,
    pub site_id: Option<i32>,
    pub start_at: DateTime<Utc>,
    pub bytes: i64,
}

/// Why a segment is to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Age,
    DeviceBytes,
    SiteBytes,
    TierBytes,
    LowSpace,
}

/// The group a byte cap counts a segment in (device, site, or the tier).
type GroupKey = fn(&Seg) -> Option<i64>;

/// Which segments to delete, oldest first within each rule. Pure: the
/// retention maths, tested on its own.
pub fn select(
    segs: &[Seg],
    p: &RetentionPolicy,
    now: DateTime<Utc>,
    free_bytes: Option<i64>,
) -> Vec<(i64, Reason)> {
    let mut sorted: Vec<&Seg> = segs.iter().collect();
    sorted.sort_by_key(|s| (s.start_at, s.id));
    let mut gone: HashMap<i64, Reason> = HashMap::new();
    let mut out = Vec::new();
    let take =
        |s: &Seg, r: Reason, gone: &mut HashMap<i64, Reason>, out: &mut Vec<(i64, Reason)>| {
            if gone.insert(s.id, r).is_none() {
                out.push((s.id, r));
            }
        };
    if let Some(days) = p.max_age_days {
        let cut = now - chrono::Duration::days(i64::from(days));
        for s in sorted.iter().filter(|s| s.start_at < cut) {
            take(s, Reason::Age, &mut gone, &mut out);
        }
    }
    // Byte caps: drop the oldest of a group until it fits.
    let caps: [(Option<i64>, Reason, GroupKey); 3] = [
        (p.max_bytes_per_device, Reason::DeviceBytes, |s| {
            Some(i64::from(s.device_id))
        }),
        (p.max_bytes_per_site, Reason::SiteBytes, |s| {
            s.site_id.map(i64::from)
        }),
        (p.max_bytes_tier, Reason::TierBytes, |_| Some(0)),
    ];
    for (cap, reason, key) in caps {
        let Some(cap) = cap else { continue };
        let mut totals: HashMap<i64, i64> = HashMap::new();
        for s in sorted.iter().filter(|s| !gone.contains_key(&s.id)) {
            if let Some(k) = key(s) {
                *totals.entry(k).or_default() += s.bytes;
            }
        }
        for s in &sorted {
            let Some(k) = key(s) else { continue };
            if gone.contains_key(&s.id) {
                continue;
            }
            let t = totals.entry(k).or_default();
            if *t > cap {
                *t -= s.bytes;
                take(s, reason, &mut gone, &mut out);
            }
        }
    }
    if let (Some(min), Some(mut free)) = (p.min_free_bytes, free_bytes) {
        for s in &sorted {
            if free >= min {
                break;
            }
            if gone.contains_key(&s.id) {
                continue;
            }
            free += s.bytes;
            take(s, Reason::LowSpace, &mut gone, &mut out);
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub deleted: usize,
    pub bytes: i64,
    pub by_reason: Vec<(String, usize)>,
    /// Ledger rows whose object was already gone.
    pub missing: usize,
    pub low_space: bool,
}

pub struct Ledger {
    db: DatabaseConnection,
}

impl Ledger {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn rows(&self, tier: &str) -> Result<Vec<recording::Model>> {
        Ok(recording::Entity::find()
            .filter(recording::Column::Tier.eq(tier))
            .order_by_asc(recording::Column::StartAt)
            .all(&self.db)
            .await?)
    }

    /// Bytes per tier, from the ledger.
    pub async fn totals(&self) -> Result<Vec<(String, i64, i64)>> {
        let rows: Vec<(String, i64, i64)> = recording::Entity::find()
            .select_only()
            .column(recording::Column::Tier)
            .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "n")
            .column_as(
                sea_orm::sea_query::Expr::cust("CAST(COALESCE(SUM(bytes), 0) AS BIGINT)"),
                "b",
            )
            .group_by(recording::Column::Tier)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows)
    }

    /// Apply a retention policy to its tier.
    pub async fn sweep(
        &self,
        store: &Storage,
        p: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<SweepReport> {
        let rows = self.rows(&p.tier).await?;
        let segs: Vec<Seg> = rows
            .iter()
            .map(|r| Seg {
                id: r.id,
                device_id: r.device_id,
                site_id: r.site_id,
                start_at: r.start_at,
                bytes: r.bytes,
            })
            .collect();
        let free = store.free_bytes().map(|f| f as i64);
        let mut report = SweepReport {
            low_space: matches!((p.min_free_bytes, free), (Some(m), Some(f)) if f < m),
            ..Default::default()
        };
        let by_id: HashMap<i64, &recording::Model> = rows.iter().map(|r| (r.id, r)).collect();
        let mut counts: HashMap<Reason, usize> = HashMap::new();
        for (id, reason) in select(&segs, p, now, free) {
            let Some(r) = by_id.get(&id) else { continue };
            match store.delete(&r.storage_key).await {
                Ok(()) => {}
                Err(e)
                    if e.to_string().contains("not found")
                        || e.to_string().contains("No such file") =>
                {
                    report.missing += 1;
                }
                Err(e) => return Err(e),
            }
            recording::Entity::delete_by_id(id).exec(&self.db).await?;
            report.deleted += 1;
            report.bytes += r.bytes;
            *counts.entry(reason).or_default() += 1;
        }
        let mut by: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(r, n)| {
                (
                    serde_json::to_value(r)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    n,
                )
            })
            .collect();
        by.sort();
        report.by_reason = by;
        Ok(report)
    }

    /// Move segments older than `days` from one tier to another: copy,
    /// verify the checksum of the copy, point the ledger at it, then
    /// delete the original.
    pub async fn migrate(
        &self,
        from: (&str, &Storage),
        to: (&str, &Arc<Storage>),
        days: u32,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(usize, i64)> {
        let cut = now - chrono::Duration::days(i64::from(days));
        let rows = recording::Entity::find()
            .filter(recording::Column::Tier.eq(from.0))
            .filter(recording::Column::StartAt.lt(cut))
            .order_by_asc(recording::Column::StartAt)
            .limit(limit as u64)
            .all(&self.db)
            .await?;
        let (mut n, mut bytes) = (0, 0);
        let mut damaged = Vec::new();
        for r in rows {
            let data = from.1.get(&r.storage_key).await?;
            to.1.put(&r.storage_key, data).await?;
            let back = to.1.get(&r.storage_key).await?;
            if crate::storage::sha256_hex(&back) != r.checksum {
                // Damaged at the source, or on the way: the copy goes, the
                // original and its ledger row stay where they are (nothing
                // is lost), and the others still move; the run reports it.
                let _ = to.1.delete(&r.storage_key).await;
                damaged.push(format!(
                    "{}: does not match its checksum; left in tier {}",
                    r.storage_key, from.0
                ));
                continue;
            }
            recording::Entity::update_many()
                .col_expr(
                    recording::Column::Tier,
                    sea_orm::sea_query::Expr::value(to.0),
                )
                .filter(recording::Column::Id.eq(r.id))
                .exec(&self.db)
                .await?;
            from.1.delete(&r.storage_key).await?;
            n += 1;
            bytes += r.bytes;
        }
        if !damaged.is_empty() {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::Internal,
                format!(
                    "moved {n} segments ({bytes} bytes) to tier {}; {} damaged:\n{}",
                    to.0,
                    damaged.len(),
                    damaged.join("\n")
                ),
            ));
        }
        Ok((n, bytes))
    }

    /// Verify a sample (every `stride`-th) of a tier's segments: the object
    /// exists, its SHA-256 matches, and it starts like an MP4 (`ftyp`).
    pub async fn scrub(&self, tier: &str, store: &Storage, stride: usize) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for r in self.rows(tier).await?.into_iter().step_by(stride.max(1)) {
            match store.get(&r.storage_key).await {
                Err(e) => problems.push(format!("{}: {e}", r.storage_key)),
                Ok(b) => {
                    if crate::storage::sha256_hex(&b) != r.checksum {
                        problems.push(format!("{}: checksum mismatch", r.storage_key));
                    } else if b.len() < 8 || &b[4..8] != b"ftyp" {
                        problems.push(format!("{}: not an MP4 (no ftyp box)", r.storage_key));
                    }
                }
            }
        }
        problems.extend(
            self.orphans(tier, store, 100_000)
                .await?
                .into_iter()
                .map(|(k, size)| {
                    format!("{k}: {size} bytes in storage but not in the ledger (left in place)")
                }),
        );
        Ok(problems)
    }

    /// Segment objects in a tier that the ledger does not know. They are
    /// listed for a person to look at and never deleted: retention only
    /// ever deletes what the ledger holds.
    pub async fn orphans(
        &self,
        tier: &str,
        store: &Storage,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let known: std::collections::HashSet<String> = self
            .rows(tier)
            .await?
            .into_iter()
            .map(|r| r.storage_key)
            .collect();
        Ok(store
            .list("recordings", limit)
            .await?
            .into_iter()
            .filter(|(k, _)| !known.contains(k))
            .collect())
    }
}

/// Hex of a digest (tests compute checksums with it).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A recorder that files into this database's ledger.
pub fn recorder(
    db: DatabaseConnection,
    store: Arc<Storage>,
    clock: crate::clock::SharedClock,
) -> Arc<crate::recorder::Recorder> {
    Arc::new(crate::recorder::Recorder::new(
        Arc::new(Ledger::new(db)),
        store,
        clock,
    ))
}

impl crate::recorder::SegmentLedger for Ledger {
    fn contains<'a>(&'a self, key: &'a str) -> futures::future::BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            Ok(recording::Entity::find()
                .filter(recording::Column::StorageKey.eq(key))
                .one(&self.db)
                .await?
                .is_some())
        })
    }

    fn file<'a>(
        &'a self,
        s: &'a crate::recorder::Filed,
    ) -> futures::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            use sea_orm::{ActiveModelTrait, Set};
            recording::ActiveModel {
                device_id: Set(s.stream.device_id),
                site_id: Set(s.stream.site_id),
                profile: Set(s.stream.profile.clone()),
                start_at: Set(s.start),
                end_at: Set(s.end),
                bytes: Set(s.bytes as i64),
                codec: Set(s.codec.clone()),
                checksum: Set(s.checksum.clone()),
                tier: Set(s.tier.clone()),
                storage_key: Set(s.key.clone()),
                created_at: Set(s.filed_at),
                origin: Set(s.origin.clone()),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: i64, dev: i32, site: i32, hours_ago: i64, bytes: i64) -> Seg {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        Seg {
            id,
            device_id: dev,
            site_id: Some(site),
            start_at: now - chrono::Duration::hours(hours_ago),
            bytes,
        }
    }

    #[test]
    fn retention_by_age_bytes_and_free_space() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let segs = vec![
            seg(1, 1, 1, 24 * 40, 100), // 40 days old
            seg(2, 1, 1, 50, 100),
            seg(3, 1, 1, 10, 100),
            seg(4, 2, 1, 30, 100),
            seg(5, 2, 2, 5, 100),
        ];
        let age = RetentionPolicy {
            max_age_days: Some(30),
            ..Default::default()
        };
        assert_eq!(select(&segs, &age, now, None), [(1, Reason::Age)]);
        // Each device may keep 150 bytes: device 1 loses its two oldest,
        // device 2 its oldest.
        let dev = RetentionPolicy {
            max_bytes_per_device: Some(150),
            ..Default::default()
        };
        assert_eq!(
            select(&segs, &dev, now, None),
            [
                (1, Reason::DeviceBytes),
                (2, Reason::DeviceBytes),
                (4, Reason::DeviceBytes)
            ]
        );
        // Site 1 holds 400 bytes; a 250 cap drops its two oldest.
        let site = RetentionPolicy {
            max_bytes_per_site: Some(250),
            ..Default::default()
        };
        assert_eq!(
            select(&segs, &site, now, None),
            [(1, Reason::SiteBytes), (2, Reason::SiteBytes)]
        );
        // 120 bytes free, 300 wanted: the two oldest go, whatever device.
        let low = RetentionPolicy {
            min_free_bytes: Some(300),
            ..Default::default()
        };
        assert_eq!(
            select(&segs, &low, now, Some(120)),
            [(1, Reason::LowSpace), (2, Reason::LowSpace)]
        );
        // Rules combine without deleting twice.
        let all = RetentionPolicy {
            max_age_days: Some(30),
            max_bytes_tier: Some(300),
            ..Default::default()
        };
        assert_eq!(
            select(&segs, &all, now, None),
            [(1, Reason::Age), (2, Reason::TierBytes)]
        );
        assert!(select(&segs, &RetentionPolicy::default(), now, Some(0)).is_empty());
    }
}
