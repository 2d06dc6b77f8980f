//! Edge backfill (ONVIF Profile G): find the gaps in our copy of each
//! recorded stream (a network outage, a camfleet restart) and fill them
//! from the camera's own recording, replayed faster than real time.
//!
//! Per device: GetServices for the search and replay services, the
//! camera's clock (the replay range is asked for in the camera's time),
//! FindRecordings for what the card holds, GetReplayUri, then one replay
//! per gap into segments filed as `origin = edge`. Each gap tried is kept
//! in `backfills`: a gap the camera has nothing for is not asked again, a
//! failed one at most three times.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::poller::{device_session, stored_credentials};
use crate::clock::SharedClock;
use crate::db::entities::{backfill, device, recording};
use crate::error::Result;
use crate::onvif::Transport;
use crate::onvif::ops::Service;
use crate::recorder::replay::ReplayRequest;
use crate::recorder::{RecordOptions, Recorder, StreamId};
use crate::secrets::SecretBox;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct BackfillConfig {
    /// How far back gaps are looked for.
    pub window: chrono::Duration,
    /// Shorter gaps are ignored (segments meet at keyframes, not exactly).
    pub min_gap: chrono::Duration,
    /// Gaps ending later than this before now are left alone: the live
    /// recording may still be filing that stretch.
    pub settle: chrono::Duration,
    /// Read cap per replay.
    pub max_bytes_per_s: u64,
    pub max_gaps_per_run: usize,
    pub segment: Duration,
    /// A failed gap is tried this many times in all.
    pub max_attempts: i32,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            window: chrono::Duration::hours(24),
            min_gap: chrono::Duration::seconds(5),
            settle: chrono::Duration::minutes(3),
            max_bytes_per_s: 4 * 1024 * 1024,
            max_gaps_per_run: 50,
            segment: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    pub devices: usize,
    pub gaps: usize,
    pub filled: usize,
    pub partial: usize,
    pub empty: usize,
    pub failed: usize,
    pub segments: u64,
    pub bytes: u64,
    pub log: Vec<String>,
}

impl BackfillReport {
    /// One line for a job log or the command line.
    pub fn summary(&self) -> String {
        format!(
            "{} gaps on {} devices: {} filled, {} partly, {} not on the camera either, {} failed; {} segments, {} MiB",
            self.gaps,
            self.devices,
            self.filled,
            self.partial,
            self.empty,
            self.failed,
            self.segments,
            self.bytes / 1_048_576
        )
    }
}

/// Interior gaps of a stream: stretches longer than `min_gap` between
/// stored segments, ending inside `(from, to]`, the start clipped to `from`. The stretch before the first and
/// after the last segment is not a gap (nothing says we recorded then).
pub fn find_gaps(
    segments: &[(DateTime<Utc>, DateTime<Utc>)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    min_gap: chrono::Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut segs: Vec<_> = segments.to_vec();
    segs.sort();
    let mut out = Vec::new();
    let mut covered_to: Option<DateTime<Utc>> = None;
    for (s, e) in segs {
        // A gap counts once the segment after it starts inside the window
        // (so its end is known and settled); its start is clipped.
        if let Some(c) = covered_to
            && s - c > min_gap
            && s <= to
            && s > from
        {
            let a = c.max(from);
            if s - a > min_gap {
                out.push((a, s));
            }
        }
        covered_to = Some(covered_to.map_or(e, |c| c.max(e)));
    }
    out
}

fn unavailable(e: crate::onvif::OnvifError) -> crate::error::Error {
    crate::error::Error::new(crate::error::ErrorKind::Unavailable, e.to_string())
}

pub struct Backfill {
    db: DatabaseConnection,
    secrets: Arc<SecretBox>,
    recorder: Arc<Recorder>,
    transport: Transport,
    clock: SharedClock,
    spool: PathBuf,
    pub config: BackfillConfig,
}

impl Backfill {
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        store: Arc<crate::storage::Storage>,
        transport: Transport,
        clock: SharedClock,
        spool: PathBuf,
    ) -> Self {
        Self {
            recorder: super::recordings::recorder(db.clone(), store, clock.clone()),
            db,
            secrets,
            transport,
            clock,
            spool,
            config: BackfillConfig::default(),
        }
    }

    /// The same backfill with other settings (the CLI's flags).
    pub fn with_config(&self, config: BackfillConfig) -> Backfill {
        Backfill {
            db: self.db.clone(),
            secrets: self.secrets.clone(),
            recorder: self.recorder.clone(),
            transport: self.transport.clone(),
            clock: self.clock.clone(),
            spool: self.spool.clone(),
            config,
        }
    }

    /// The gaps of one stream still worth asking the camera for.
    pub async fn open_gaps(
        &self,
        device_id: i32,
        profile: &str,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let now = self.clock.now_utc();
        let (from, to) = (now - self.config.window, now - self.config.settle);
        // Only the two times of each segment: this runs for every recorded
        // device every ten minutes.
        let segs: Vec<(DateTime<Utc>, DateTime<Utc>)> = recording::Entity::find()
            .select_only()
            .columns([recording::Column::StartAt, recording::Column::EndAt])
            .filter(recording::Column::DeviceId.eq(device_id))
            .filter(recording::Column::Profile.eq(profile))
            .filter(recording::Column::EndAt.gte(from - chrono::Duration::hours(1)))
            .filter(recording::Column::StartAt.lt(to))
            .order_by_asc(recording::Column::StartAt)
            .into_tuple()
            .all(&self.db)
            .await?;
        let tried = backfill::Entity::find()
            .filter(backfill::Column::DeviceId.eq(device_id))
            .filter(backfill::Column::Profile.eq(profile))
            .all(&self.db)
            .await?;
        Ok(find_gaps(&segs, from, to, self.config.min_gap)
            .into_iter()
            .filter(|(a, b)| {
                !tried.iter().any(|t| {
                    t.gap_start == *a
                        && t.gap_end == *b
                        && (t.state != "failed" || t.attempts >= self.config.max_attempts)
                })
            })
            .collect())
    }

    /// Fill the open gaps of every recorded, reachable device (or one).
    pub async fn run(&self, only: Option<i32>, stop: Shutdown) -> Result<BackfillReport> {
        let mut q = device::Entity::find()
            .filter(device::Column::RecordProfile.is_not_null())
            .filter(device::Column::Status.is_in(["online", "degraded"]));
        if let Some(id) = only {
            q = q.filter(device::Column::Id.eq(id));
        }
        let mut report = BackfillReport::default();
        for d in q.all(&self.db).await? {
            if stop.is_fired() || report.gaps >= self.config.max_gaps_per_run {
                break;
            }
            let profile = d.record_profile.clone().unwrap_or_default();
            let mut gaps = self.open_gaps(d.id, &profile).await?;
            gaps.truncate(self.config.max_gaps_per_run - report.gaps);
            if gaps.is_empty() {
                continue;
            }
            report.devices += 1;
            report.gaps += gaps.len();
            let name = super::inventory::display_name(&d);
            match self
                .device(&d, &profile, &gaps, &mut report, stop.clone())
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    report.failed += gaps.len();
                    report.log.push(format!("{name}: {e}"));
                    for g in &gaps {
                        self.note(d.id, &profile, *g, "failed", None, &e.to_string())
                            .await?;
                    }
                }
            }
        }
        Ok(report)
    }

    async fn device(
        &self,
        d: &device::Model,
        profile: &str,
        gaps: &[(DateTime<Utc>, DateTime<Utc>)],
        report: &mut BackfillReport,
        stop: Shutdown,
    ) -> Result<()> {
        use crate::onvif::recording as rec;
        let name = super::inventory::display_name(d);
        let creds = stored_credentials(&self.db, &self.secrets, d.credential_id).await?;
        let session = device_session(
            &d.device_url,
            &d.policy,
            d.auth_mode.as_deref(),
            &d.quirks,
            creds.clone(),
            &self.transport,
            &self.clock,
        )
        .map_err(|(_, m)| crate::error::Error::new(crate::error::ErrorKind::InvalidArgument, m))?;
        let services = crate::onvif::adopt::discover_services(&session)
            .await
            .map_err(unavailable)?;
        let has = |s: Service| services.iter().any(|x| x.service == Some(s));
        if !has(Service::Replay) || !has(Service::Search) {
            for g in gaps {
                self.note(
                    d.id,
                    profile,
                    *g,
                    "empty",
                    None,
                    "no on-board recording (no search or replay service)",
                )
                .await?;
            }
            report.empty += gaps.len();
            report.log.push(format!(
                "{name}: no on-board recording to fill {} gaps from",
                gaps.len()
            ));
            return Ok(());
        }
        let _ = session.sync_clock().await;
        let offset = chrono::Duration::milliseconds(session.clock_offset_ms().unwrap_or(0));
        let recordings: Vec<rec::RecordingInfo> = rec::find_recordings(&session, 10)
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter(|r| !r.video_tracks.is_empty() || r.earliest.is_some())
            .collect();
        let mut uris: std::collections::HashMap<String, url::Url> = Default::default();
        for &(a, b) in gaps {
            if stop.is_fired() {
                break;
            }
            // The recording that covers most of the gap (in our time).
            let overlap = |r: &rec::RecordingInfo| {
                let from = r.earliest.map(|t| t - offset).unwrap_or(a);
                let to = r.latest.map(|t| t - offset).unwrap_or(b);
                (to.min(b) - from.max(a)).num_milliseconds()
            };
            let Some(best) = recordings
                .iter()
                .max_by_key(|r| overlap(r))
                .filter(|r| overlap(r) > 0)
            else {
                self.note(
                    d.id,
                    profile,
                    (a, b),
                    "empty",
                    None,
                    "the camera holds nothing for this stretch",
                )
                .await?;
                report.empty += 1;
                continue;
            };
            let uri = match uris.get(&best.token) {
                Some(u) => u.clone(),
                None => {
                    let u = rec::get_replay_uri(&session, &best.token)
                        .await
                        .map_err(unavailable)?;
                    uris.insert(best.token.clone(), u.clone());
                    u
                }
            };
            let mut opts = RecordOptions::new(self.spool.clone());
            opts.origin = "edge".into();
            opts.segment = self.config.segment;
            let stream = StreamId {
                device_id: d.id,
                site_id: d.site_id,
                profile: profile.to_string(),
            };
            let req = ReplayRequest {
                uri,
                creds: creds.clone().map(|c| (c.username, c.password)),
                from: a,
                to: b,
                max_bytes_per_s: self.config.max_bytes_per_s,
                idle_timeout: Duration::from_secs(15),
                camera_offset: offset,
            };
            match self
                .recorder
                .backfill(&stream, req, &opts, stop.clone())
                .await
            {
                Ok(st) => {
                    let slack = chrono::Duration::seconds(2);
                    let state = match (st.first, st.last) {
                        (Some(f), Some(l)) if f <= a + slack && l >= b - slack => "filled",
                        (Some(_), _) => "partial",
                        _ => "empty",
                    };
                    match state {
                        "filled" => report.filled += 1,
                        "partial" => report.partial += 1,
                        _ => report.empty += 1,
                    }
                    report.segments += st.segments;
                    report.bytes += st.bytes;
                    report.log.push(format!(
                        "{name}: {} – {}: {state}, {} frames in {} segments ({} KiB){}",
                        a.format("%Y-%m-%d %H:%M:%S"),
                        b.format("%H:%M:%S"),
                        st.frames,
                        st.segments,
                        st.bytes / 1024,
                        if st.dropped > 0 {
                            format!(", {} frames lost in transit", st.dropped)
                        } else {
                            String::new()
                        }
                    ));
                    self.note(d.id, profile, (a, b), state, Some(&st), "")
                        .await?;
                }
                // 457 Invalid Range: the camera has nothing there.
                Err(e) if e.to_string().contains(" 457 ") => {
                    report.empty += 1;
                    self.note(d.id, profile, (a, b), "empty", None, &e.to_string())
                        .await?;
                }
                Err(e) => {
                    report.failed += 1;
                    report.log.push(format!("{name}: {} – {}: {e}", a, b));
                    self.note(d.id, profile, (a, b), "failed", None, &e.to_string())
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Keep what happened to a gap (one row per gap, attempts counted).
    async fn note(
        &self,
        device_id: i32,
        profile: &str,
        (a, b): (DateTime<Utc>, DateTime<Utc>),
        state: &str,
        st: Option<&crate::recorder::BackfillStats>,
        error: &str,
    ) -> Result<()> {
        let now = self.clock.now_utc();
        let existing = backfill::Entity::find()
            .filter(backfill::Column::DeviceId.eq(device_id))
            .filter(backfill::Column::Profile.eq(profile))
            .filter(backfill::Column::GapStart.eq(a))
            .filter(backfill::Column::GapEnd.eq(b))
            .one(&self.db)
            .await?;
        let mut am = match existing {
            Some(row) => {
                let attempts = row.attempts;
                let mut am: backfill::ActiveModel = row.into();
                am.attempts = Set(attempts + 1);
                am
            }
            None => backfill::ActiveModel {
                device_id: Set(device_id),
                profile: Set(profile.to_string()),
                gap_start: Set(a),
                gap_end: Set(b),
                attempts: Set(1),
                ..Default::default()
            },
        };
        am.state = Set(state.to_string());
        am.frames = Set(st.map_or(0, |s| s.frames as i64));
        am.segments = Set(st.map_or(0, |s| s.segments as i32));
        am.bytes = Set(st.map_or(0, |s| s.bytes as i64));
        am.error = Set(error.chars().take(1000).collect());
        am.attempted_at = Set(now);
        am.save(&self.db).await?;
        Ok(())
    }

    /// The latest gaps tried for a device, newest first (the device page).
    pub async fn history(
        db: &DatabaseConnection,
        device_id: i32,
        limit: u64,
    ) -> Result<Vec<backfill::Model>> {
        use sea_orm::QuerySelect;
        Ok(backfill::Entity::find()
            .filter(backfill::Column::DeviceId.eq(device_id))
            .order_by_desc(backfill::Column::GapStart)
            .limit(limit)
            .all(db)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn gaps_are_interior_longer_than_the_minimum_and_clipped() {
        let segs = [
            (t(0), t(60)),
            (t(61), t(120)),  // 1 s: not a gap
            (t(300), t(360)), // 180 s gap
            (t(330), t(420)), // overlapping (an edge segment)
            (t(1000), t(1060)),
        ];
        let g = find_gaps(&segs, t(0), t(2000), chrono::Duration::seconds(5));
        assert_eq!(g, vec![(t(120), t(300)), (t(420), t(1000))]);
        // Clipped to the window; a gap whose end is past it waits.
        let g = find_gaps(&segs, t(200), t(900), chrono::Duration::seconds(5));
        assert_eq!(g, vec![(t(200), t(300))]);
        assert!(find_gaps(&[], t(0), t(10), chrono::Duration::seconds(1)).is_empty());
    }
}
