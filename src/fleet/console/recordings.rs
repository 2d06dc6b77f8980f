//! Recorded video as people reach it: a device's segments for a day with
//! the gaps between them, one segment's bytes, and an export of a time
//! range joined into one MP4. Watching and downloading video is a role
//! permission (`Role::can_watch_video`), and only within the actor's sites.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Console, not_found};
use crate::db::entities::{device, recording};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::audit::Actor;
use crate::fleet::users::Role;
use crate::storage::Storage;

/// Storage tiers by name.
pub type Tiers = HashMap<String, Arc<Storage>>;

fn tier<'a>(tiers: &'a Tiers, name: &str) -> Result<&'a Arc<Storage>> {
    tiers.get(name).ok_or_else(|| {
        Error::new(
            ErrorKind::Unavailable,
            format!("no storage tier {name:?} is configured here"),
        )
    })
}

/// A row of the timeline: a segment, or a gap before it.
pub struct Slot {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// None: a gap.
    pub segment: Option<recording::Model>,
}

/// Segments and the gaps between them (a gap is more than 2 s missing).
pub fn timeline(segs: Vec<recording::Model>) -> Vec<Slot> {
    let mut out = Vec::new();
    let mut last_end: Option<chrono::DateTime<chrono::Utc>> = None;
    for s in segs {
        if let Some(e) = last_end
            && s.start_at - e > chrono::Duration::seconds(2)
        {
            out.push(Slot {
                start: e,
                end: s.start_at,
                segment: None,
            });
        }
        last_end = Some(last_end.map_or(s.end_at, |e| e.max(s.end_at)));
        out.push(Slot {
            start: s.start_at,
            end: s.end_at,
            segment: Some(s),
        });
    }
    out
}

/// Consecutive segments of one origin without a gap: one bar of the
/// timeline, one row of the day's table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stretch {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// `live` (recorded here) or `edge` (filled from the camera's card).
    pub origin: String,
    pub segments: usize,
    pub bytes: i64,
}

/// Something that happened on the day, marked on the timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mark {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `alert` or `event`.
    pub kind: &'static str,
    pub text: String,
    /// An alert's page.
    pub link: Option<String>,
}

/// One segment as the timeline's player needs it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlayItem {
    pub id: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The profile a day or range is played in: the recorded one when it has
/// segments there, else the one with the most.
fn played_profile(d: &device::Model, segs: &[recording::Model]) -> Option<String> {
    d.record_profile
        .clone()
        .filter(|p| segs.iter().any(|s| &s.profile == p))
        .or_else(|| {
            let mut counts: HashMap<&str, usize> = Default::default();
            for s in segs {
                *counts.entry(s.profile.as_str()).or_default() += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(p, _)| p.to_string())
        })
}

/// Stretches of segments: a new one after a gap (over 2 s) or where the
/// origin changes.
pub fn stretches(segs: &[recording::Model]) -> Vec<Stretch> {
    let mut out: Vec<Stretch> = Vec::new();
    for s in segs {
        match out.last_mut() {
            Some(l)
                if l.origin == s.origin && s.start_at - l.end <= chrono::Duration::seconds(2) =>
            {
                l.end = l.end.max(s.end_at);
                l.segments += 1;
                l.bytes += s.bytes;
            }
            _ => out.push(Stretch {
                start: s.start_at,
                end: s.end_at,
                origin: s.origin.clone(),
                segments: 1,
                bytes: s.bytes,
            }),
        }
    }
    out
}

pub struct DayView {
    pub d: device::Model,
    /// The day in the site's time zone.
    pub day: chrono::NaiveDate,
    /// The site's time zone (UTC without a site).
    pub tz: chrono_tz::Tz,
    /// The day's bounds in UTC (23 or 25 hours on a clock change).
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
    pub slots: Vec<Slot>,
    pub stretches: Vec<Stretch>,
    pub marks: Vec<Mark>,
    /// The one profile played on the timeline (the recorded one, else
    /// the one with the most segments) and its segments.
    pub play: Vec<PlayItem>,
    pub total_bytes: i64,
}

/// One byte range as a `Range` header asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-` or `first-last` (inclusive).
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The inclusive range within `total` bytes, or None when none of it
    /// lies there (416).
    pub fn resolve(self, total: u64) -> Option<(u64, u64)> {
        match self {
            _ if total == 0 => None,
            ByteRange::From(first, _) if first >= total => None,
            ByteRange::From(first, last) => {
                let last = last.unwrap_or(u64::MAX).min(total - 1);
                (last >= first).then_some((first, last))
            }
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((total.saturating_sub(n), total - 1)),
        }
    }
}

/// What a client asked of a video resource, from its request headers.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// The one range asked for (None: all of it; several are served whole).
    pub range: Option<ByteRange>,
    /// `If-None-Match`: the tags the client holds (`*` for any).
    pub if_none_match: Vec<String>,
    /// `If-Range`: the range only if the resource still has this tag.
    pub if_range: Option<String>,
}

/// How a request for video is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// 304: the client's copy is current.
    NotModified,
    /// 416: the range lies outside the resource.
    Unsatisfiable,
    /// 200: all of it.
    Full,
    /// 206: bytes `start..=end`.
    Partial { start: u64, end: u64 },
}

impl Wanted {
    pub fn decide(&self, etag: &str, total: u64) -> Served {
        let matches = |t: &str| t == "*" || t.trim_start_matches("W/") == etag;
        if self.if_none_match.iter().any(|t| matches(t)) {
            return Served::NotModified;
        }
        let Some(range) = self.range else {
            return Served::Full;
        };
        // A stale If-Range: the whole, current resource.
        if self.if_range.as_deref().is_some_and(|t| t != etag) {
            return Served::Full;
        }
        match range.resolve(total) {
            Some((start, end)) => Served::Partial { start, end },
            None => Served::Unsatisfiable,
        }
    }
}

/// A strong entity tag from a stored SHA-256 (hex).
pub fn etag_of(checksum: &str) -> String {
    format!("\"{}\"", &checksum[..checksum.len().min(32)])
}

/// One segment's bytes (or the asked-for part of them), ready to send.
pub struct SegmentBytes {
    pub filename: String,
    pub etag: String,
    /// The whole segment's size.
    pub total: u64,
    pub served: Served,
    /// What is sent: all, the range, or nothing (304, 416).
    pub bytes: bytes::Bytes,
}

/// A finished export: an open file (its name already removed) and its size.
pub struct ExportFile {
    pub filename: String,
    /// None when nothing is sent (304).
    pub file: Option<std::fs::File>,
    pub len: u64,
    pub etag: String,
    pub served: Served,
}

/// Alerts, and camera events, marked on one day's timeline at most.
const MARKS_MAX: u64 = 500;

/// The longest range one export may cover.
pub const EXPORT_MAX: chrono::Duration = chrono::Duration::hours(6);
/// The most segment bytes one export may read.
pub const EXPORT_MAX_BYTES: i64 = 2 * 1024 * 1024 * 1024;

impl Console {
    async fn video_device(&self, actor: &Actor, id: i32) -> Result<device::Model> {
        actor.require(Role::can_watch_video)?;
        self.device_in_scope(actor, id).await
    }

    /// A device's segments on one UTC day (today when `day` is None).
    pub async fn recordings_day(
        &self,
        actor: &Actor,
        id: i32,
        day: Option<chrono::NaiveDate>,
    ) -> Result<DayView> {
        use crate::db::entities::{alert, device_event};
        use chrono::TimeZone;
        let d = self.video_device(actor, id).await?;
        let tz = self.site_tz(d.site_id).await?;
        let day = day.unwrap_or_else(|| self.clock.now_utc().with_timezone(&tz).date_naive());
        // Local midnight to local midnight; on a day whose midnight does
        // not exist (a clock change at 00:00) the first instant after it.
        let midnight = |d: chrono::NaiveDate| {
            let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
            tz.from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|| naive.and_utc())
        };
        let from = midnight(day);
        let to = midnight(day.succ_opt().unwrap_or(day));
        let segs = recording::Entity::find()
            .filter(recording::Column::DeviceId.eq(id))
            .filter(recording::Column::StartAt.lt(to))
            .filter(recording::Column::EndAt.gt(from))
            .order_by_asc(recording::Column::StartAt)
            .all(&self.db)
            .await?;
        let total_bytes = segs.iter().map(|s| s.bytes).sum();
        let profile = played_profile(&d, &segs);
        let play = segs
            .iter()
            .filter(|s| Some(&s.profile) == profile.as_ref())
            .map(|s| PlayItem {
                id: s.id,
                start_ms: s.start_at.timestamp_millis(),
                end_ms: s.end_at.timestamp_millis(),
            })
            .collect();
        let mut marks: Vec<Mark> = alert::Entity::find()
            .filter(alert::Column::DeviceId.eq(id))
            .filter(alert::Column::OpenedAt.gte(from))
            .filter(alert::Column::OpenedAt.lt(to))
            .order_by_asc(alert::Column::OpenedAt)
            .limit(MARKS_MAX)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| Mark {
                at: a.opened_at,
                kind: "alert",
                text: format!("{}: {}", a.severity, a.summary),
                link: Some(format!("/alerts/{}", a.id)),
            })
            .collect();
        marks.extend(
            device_event::Entity::find()
                .filter(device_event::Column::DeviceId.eq(id))
                .filter(device_event::Column::At.gte(from))
                .filter(device_event::Column::At.lt(to))
                .order_by_asc(device_event::Column::At)
                .limit(MARKS_MAX)
                .all(&self.db)
                .await?
                .into_iter()
                .map(|e| Mark {
                    at: e.at,
                    kind: "event",
                    text: match e.active {
                        Some(true) => format!("{} (on)", e.topic),
                        Some(false) => format!("{} (off)", e.topic),
                        None => e.topic,
                    },
                    link: None,
                }),
        );
        marks.sort_by_key(|m| m.at);
        Ok(DayView {
            d,
            day,
            tz,
            from,
            to,
            stretches: stretches(&segs),
            slots: timeline(segs),
            marks,
            play,
            total_bytes,
        })
    }

    /// One segment's MP4 (its device within the actor's sites).
    pub async fn segment(
        &self,
        tiers: &Tiers,
        actor: &Actor,
        id: i64,
        wanted: &Wanted,
    ) -> Result<SegmentBytes> {
        actor.require(Role::can_watch_video)?;
        let r = recording::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found("recording", id))?;
        self.device_in_scope(actor, r.device_id)
            .await
            .map_err(|_| not_found("recording", id))?;
        let total = u64::try_from(r.bytes).unwrap_or(0);
        // A row without a checksum (none is written so today) still gets
        // a tag of its own, never the empty one every such row would share.
        let etag = if r.checksum.is_empty() {
            format!("\"segment-{}-{}\"", r.id, r.bytes)
        } else {
            etag_of(&r.checksum)
        };
        let served = wanted.decide(&etag, total);
        let store = tier(tiers, &r.tier)?;
        // Only the asked-for bytes are read from the tier.
        let bytes = match served {
            Served::Full => store.get(&r.storage_key).await?,
            Served::Partial { start, end } => {
                store.get_range(&r.storage_key, start..end + 1).await?
            }
            Served::NotModified | Served::Unsatisfiable => bytes::Bytes::new(),
        };
        Ok(SegmentBytes {
            filename: format!(
                "camera{}-{}.mp4",
                r.device_id,
                r.start_at.format("%Y%m%dT%H%M%SZ")
            ),
            etag,
            total,
            served,
            bytes,
        })
    }

    /// The time zone of a device's site (UTC without one).
    pub(crate) async fn site_tz(&self, site_id: Option<i32>) -> Result<chrono_tz::Tz> {
        let Some(sid) = site_id else {
            return Ok(chrono_tz::UTC);
        };
        Ok(crate::db::entities::site::Entity::find_by_id(sid)
            .one(&self.db)
            .await?
            .and_then(|s| s.time_zone.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(chrono_tz::UTC))
    }

    /// An export of a stretch of one day given in the site's time zone
    /// (the recordings page's form): resolved to UTC, then [`export`](Self::export).
    #[allow(clippy::too_many_arguments)]
    pub async fn export_local(
        &self,
        tiers: &Tiers,
        actor: &Actor,
        id: i32,
        day: chrono::NaiveDate,
        (from, to): (chrono::NaiveTime, chrono::NaiveTime),
        profile: Option<String>,
        dir: &std::path::Path,
        wanted: &Wanted,
    ) -> Result<ExportFile> {
        use chrono::TimeZone;
        let d = self.video_device(actor, id).await?;
        let tz = self.site_tz(d.site_id).await?;
        let at = |t: chrono::NaiveTime, what: &str| {
            tz.from_local_datetime(&day.and_time(t))
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "{what}: that time does not exist in {} on {day} (the clocks changed)",
                            tz.name()
                        ),
                    )
                })
        };
        let (from, to) = (at(from, "from")?, at(to, "to")?);
        self.export(tiers, actor, id, from, to, profile, dir, wanted)
            .await
    }

    /// One MP4 of a time range: the segments of one profile joined,
    /// trimmed to the range from the keyframe before it, gaps closed up.
    /// At most 6 hours and 2 GiB of segments; written to `dir` and unlinked
    /// at once (the open file outlives its name).
    #[allow(clippy::too_many_arguments)]
    pub async fn export(
        &self,
        tiers: &Tiers,
        actor: &Actor,
        id: i32,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        profile: Option<String>,
        dir: &std::path::Path,
        wanted: &Wanted,
    ) -> Result<ExportFile> {
        let d = self.video_device(actor, id).await?;
        if to <= from {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "to: must be after from",
            ));
        }
        if to - from > EXPORT_MAX {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the range is longer than 6 hours; export it in parts",
            ));
        }
        let mut segs = recording::Entity::find()
            .filter(recording::Column::DeviceId.eq(id))
            .filter(recording::Column::StartAt.lt(to))
            .filter(recording::Column::EndAt.gt(from))
            .order_by_asc(recording::Column::StartAt)
            .all(&self.db)
            .await?;
        // One profile: the one asked for, else the recorded one, else the
        // one with the most segments in the range.
        let profile = match profile.filter(|p| !p.is_empty()) {
            None => played_profile(&d, &segs),
            Some(p) => Some(p),
        };
        segs.retain(|s| Some(&s.profile) == profile.as_ref());
        if segs.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "nothing recorded in that range",
            ));
        }
        if segs.iter().map(|s| s.bytes).sum::<i64>() > EXPORT_MAX_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the range holds more than 2 GiB; export it in parts",
            ));
        }
        let filename = format!(
            "camera{}-{}-{}.mp4",
            id,
            from.format("%Y%m%dT%H%M%SZ"),
            to.format("%H%M%SZ")
        );
        // The same range of the same segments makes the same file: its tag
        // is known before it is built, so a current copy costs nothing.
        let etag = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(format!("export v2 {id} {from} {to} {profile:?}").as_bytes());
            for s in &segs {
                h.update(format!(" {}:{}", s.id, s.checksum).as_bytes());
            }
            etag_of(&crate::storage::hex(&h.finalize()))
        };
        if wanted.decide(&etag, u64::MAX) == Served::NotModified {
            return Ok(ExportFile {
                filename,
                file: None,
                len: 0,
                etag,
                served: Served::NotModified,
            });
        }
        let path = dir.join(format!("camfleet-export-{}.mp4", uuid::Uuid::new_v4()));
        let result = join(tiers, &segs, from, to, &path).await;
        let _ = std::fs::remove_file(&path);
        let file = result?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "nothing recorded in that range"))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(ExportFile {
            filename,
            served: wanted.decide(&etag, len),
            file: Some(file),
            len,
            etag,
        })
    }
}

/// Read the segments one at a time from their tiers and join them into
/// `path`; the finished file, or None when no frame fell in the range.
async fn join(
    tiers: &Tiers,
    segs: &[recording::Model],
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    path: &std::path::Path,
) -> Result<Option<std::fs::File>> {
    use crate::recorder::mp4::Concat;
    let mut c: Concat<std::fs::File> = Concat::new();
    for s in segs {
        let bytes = tier(tiers, &s.tier)?.get(&s.storage_key).await?;
        let (start, from_ms, to_ms) = (
            s.start_at.timestamp_millis(),
            from.timestamp_millis(),
            to.timestamp_millis(),
        );
        let out = path.to_path_buf();
        let key = s.storage_key.clone();
        c = tokio::task::spawn_blocking(move || {
            c.add(
                || {
                    std::fs::File::options()
                        .create_new(true)
                        .read(true)
                        .write(true)
                        .open(&out)
                },
                &bytes,
                start,
                from_ms,
                to_ms,
            )
            .map(|()| c)
            .map_err(|e| format!("{key}: {e}"))
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?
        .map_err(|e| Error::new(ErrorKind::Internal, e))?;
    }
    let file = tokio::task::spawn_blocking(move || c.finish())
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?
        .map_err(|e| Error::new(ErrorKind::Internal, e))?;
    Ok(file.map(|mut f| {
        use std::io::Seek;
        let _ = f.rewind();
        f
    }))
}
