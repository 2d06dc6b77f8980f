//! Scheduled maintenance jobs: a cron expression in a time zone, parameters,
//! an enabled flag and a policy for runs missed while camfleet was down.
//! One run at a time per job; every run is recorded with its start, end,
//! outcome and log.
//!
//! [`Jobs::tick`] decides what is due on the injected clock, so schedules
//! and the missed-run policy are tested by moving time by hand.
//!
//! Missed runs: a slot that passed more than [`GRACE`] ago counts as
//! missed. `skip` drops missed slots (the next run is the next slot);
//! `run_once` runs once now for all of them (trigger `catch_up`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::discovery::{DiscoveryService, RunKind};
use super::firmware::Firmware;
use super::inventory::Inventory;
use super::provision::Provisioner;
use super::recordings::{Ledger, RetentionPolicy};
pub use super::schedule::JobSchedule;
use crate::clock::SharedClock;
use crate::db::entities::{device, job, job_run};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::Storage;

/// What a job does. The database keeps the name (`as_str`); the work is
/// one `match` on this enum, so a kind cannot be added without its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    RetentionSweep,
    EdgeBackfill,
    TierMigration,
    StorageScrub,
    HealthRollup,
    Rediscovery,
    TimeSyncCheck,
    ConfigBackup,
    FirmwareAudit,
    DatabaseMaintenance,
}

impl JobKind {
    pub const ALL: [JobKind; 10] = [
        JobKind::RetentionSweep,
        JobKind::EdgeBackfill,
        JobKind::TierMigration,
        JobKind::StorageScrub,
        JobKind::HealthRollup,
        JobKind::Rediscovery,
        JobKind::TimeSyncCheck,
        JobKind::ConfigBackup,
        JobKind::FirmwareAudit,
        JobKind::DatabaseMaintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::RetentionSweep => "retention_sweep",
            JobKind::EdgeBackfill => "edge_backfill",
            JobKind::TierMigration => "tier_migration",
            JobKind::StorageScrub => "storage_scrub",
            JobKind::HealthRollup => "health_rollup",
            JobKind::Rediscovery => "rediscovery",
            JobKind::TimeSyncCheck => "time_sync_check",
            JobKind::ConfigBackup => "config_backup",
            JobKind::FirmwareAudit => "firmware_audit",
            JobKind::DatabaseMaintenance => "database_maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The kinds by name, for forms.
pub const KINDS: [&str; 10] = [
    "retention_sweep",
    "edge_backfill",
    "tier_migration",
    "storage_scrub",
    "health_rollup",
    "rediscovery",
    "time_sync_check",
    "config_backup",
    "firmware_audit",
    "database_maintenance",
];

/// A slot later than this is missed, not merely late.
pub const GRACE: chrono::Duration = chrono::Duration::minutes(5);

/// Parse a schedule with crontab's meaning (see [`JobSchedule`]).
pub fn parse_schedule(expr: &str) -> std::result::Result<JobSchedule, String> {
    JobSchedule::parse(expr)
}

pub fn parse_tz(name: &str) -> std::result::Result<chrono_tz::Tz, String> {
    name.trim()
        .parse::<chrono_tz::Tz>()
        .map_err(|_| format!("unknown time zone {name:?} (an IANA name such as Europe/Berlin)"))
}

/// The next `n` run times after `after`, in UTC.
pub fn next_runs(
    schedule: &JobSchedule,
    tz: chrono_tz::Tz,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    schedule
        .after(&after.with_timezone(&tz))
        .take(n)
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

/// A run to start: its schedule slot and trigger (`schedule`, `catch_up`).
pub type DueRun = (DateTime<Utc>, &'static str);

/// What is due for one job at `now`: (slot, trigger) and the slot to
/// remember as handled. Pure.
pub fn due(
    schedule: &JobSchedule,
    tz: chrono_tz::Tz,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: &str,
) -> (Option<DueRun>, Option<DateTime<Utc>>) {
    let passed: Vec<DateTime<Utc>> = schedule
        .after(&since.with_timezone(&tz))
        .map(|t| t.with_timezone(&Utc))
        .take_while(|t| *t <= now)
        .take(100_000)
        .collect();
    let Some(last) = passed.last().copied() else {
        return (None, None);
    };
    if now - last <= GRACE {
        // On time (earlier missed slots, if any, are covered by this run).
        return (Some((last, "schedule")), Some(last));
    }
    match policy {
        "run_once" => (Some((last, "catch_up")), Some(last)),
        _ => (None, Some(last)),
    }
}

/// What job kinds need.
pub struct JobContext {
    pub db: DatabaseConnection,
    pub clock: SharedClock,
    /// Storage tiers by name; `hot` is the default tier.
    pub tiers: std::collections::HashMap<String, Arc<Storage>>,
    pub provisioner: Arc<Provisioner>,
    pub firmware: Arc<Firmware>,
    pub discovery: Option<(DiscoveryService, Inventory)>,
    /// Where database backups go before the storage tier (SQLite).
    pub data_dir: Option<PathBuf>,
    /// Edge backfill (needs a spool directory, so only with a data dir).
    pub backfill: Option<Arc<super::backfill::Backfill>>,
}

pub struct Jobs {
    ctx: Arc<JobContext>,
    running: Mutex<HashSet<i32>>,
}

/// Frees a job's running mark however its run ends.
struct Running<'a> {
    set: &'a Mutex<HashSet<i32>>,
    id: i32,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, m.into())
}

impl Jobs {
    pub fn new(ctx: JobContext) -> Self {
        Self {
            ctx: Arc::new(ctx),
            running: Mutex::new(HashSet::new()),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.ctx.db
    }

    /// Jobs are fleet-wide: read by operators who see every site,
    /// changed and started by admins.
    pub fn check_read(actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        if !actor.scope.is_all() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "scheduled jobs work on the whole fleet; they are for those who see every site",
            ));
        }
        Ok(())
    }

    pub async fn list_for(&self, actor: &Actor) -> Result<Vec<job::Model>> {
        Self::check_read(actor)?;
        self.list().await
    }

    pub async fn get_for(&self, actor: &Actor, id: i32) -> Result<job::Model> {
        Self::check_read(actor)?;
        self.get(id).await
    }

    pub async fn runs_for(
        &self,
        actor: &Actor,
        job_id: i32,
        limit: u64,
    ) -> Result<Vec<job_run::Model>> {
        Self::check_read(actor)?;
        self.runs(job_id, limit).await
    }

    /// Delete a job and its run history (admins; audited).
    pub async fn delete(&self, id: i32, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let j = self.get(id).await?;
        if self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("job {id} is running; wait for it to finish"),
            ));
        }
        job_run::Entity::delete_many()
            .filter(job_run::Column::JobId.eq(id))
            .exec(&self.ctx.db)
            .await?;
        job::Entity::delete_by_id(id).exec(&self.ctx.db).await?;
        audit::record(
            &self.ctx.db,
            actor,
            self.ctx.clock.now_utc(),
            Entry {
                action: "job.delete",
                target_kind: "job",
                target_id: id.to_string(),
                before: Some(
                    serde_json::json!({"name": j.name, "kind": j.kind, "schedule": j.schedule}),
                ),
                after: None,
            },
        )
        .await
    }

    pub async fn list(&self) -> Result<Vec<job::Model>> {
        Ok(job::Entity::find()
            .order_by_asc(job::Column::Name)
            .all(&self.ctx.db)
            .await?)
    }

    pub async fn get(&self, id: i32) -> Result<job::Model> {
        job::Entity::find_by_id(id)
            .one(&self.ctx.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no job {id}")))
    }

    pub async fn runs(&self, job_id: i32, limit: u64) -> Result<Vec<job_run::Model>> {
        Ok(job_run::Entity::find()
            .filter(job_run::Column::JobId.eq(job_id))
            .order_by_desc(job_run::Column::Id)
            .limit(limit)
            .all(&self.ctx.db)
            .await?)
    }

    /// Create or update a job (validated, audited).
    #[allow(clippy::too_many_arguments)]
    pub async fn save(
        &self,
        id: Option<i32>,
        name: &str,
        kind: &str,
        schedule: &str,
        timezone: &str,
        params: serde_json::Value,
        enabled: bool,
        missed_policy: &str,
        actor: &Actor,
    ) -> Result<job::Model> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid("name: required, at most 100 characters"));
        }
        let Some(job_kind) = JobKind::parse(kind) else {
            return Err(invalid(format!("kind: one of {}", KINDS.join(", "))));
        };
        parse_schedule(schedule).map_err(|e| invalid(format!("schedule: {e}")))?;
        parse_tz(timezone).map_err(|e| invalid(format!("time zone: {e}")))?;
        if !["skip", "run_once"].contains(&missed_policy) {
            return Err(invalid("missed runs: skip or run_once"));
        }
        if !params.is_object() {
            return Err(invalid("parameters: a JSON object"));
        }
        check_params(job_kind, &params).map_err(|e| invalid(format!("parameters: {e}")))?;
        let now = self.ctx.clock.now_utc();
        if let Some(other) = job::Entity::find()
            .filter(job::Column::Name.eq(name))
            .one(&self.ctx.db)
            .await?
            && Some(other.id) != id
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("a job named {name:?} exists"),
            ));
        }
        let (m, before) = match id {
            Some(id) => {
                let old = self.get(id).await?;
                let before = json!({"name": old.name, "kind": old.kind, "schedule": old.schedule, "timezone": old.timezone, "params": old.params, "enabled": old.enabled, "missed_policy": old.missed_policy});
                let schedule_changed =
                    old.schedule != schedule.trim() || old.timezone != timezone.trim();
                let mut am = old.into_active_model();
                am.name = Set(name.into());
                am.kind = Set(kind.into());
                am.schedule = Set(schedule.trim().into());
                am.timezone = Set(timezone.trim().into());
                am.params = Set(params);
                am.enabled = Set(enabled);
                am.missed_policy = Set(missed_policy.into());
                if schedule_changed {
                    // A new schedule starts from now, not from old slots.
                    am.last_scheduled_at = Set(Some(now));
                }
                am.updated_at = Set(now);
                (am.update(&self.ctx.db).await?, Some(before))
            }
            None => (
                job::ActiveModel {
                    name: Set(name.into()),
                    kind: Set(kind.into()),
                    schedule: Set(schedule.trim().into()),
                    timezone: Set(timezone.trim().into()),
                    params: Set(params),
                    enabled: Set(enabled),
                    missed_policy: Set(missed_policy.into()),
                    last_scheduled_at: Set(Some(now)),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&self.ctx.db)
                .await?,
                None,
            ),
        };
        audit::record(
            &self.ctx.db,
            actor,
            now,
            Entry {
                action: if before.is_some() { "job.update" } else { "job.create" },
                target_kind: "job",
                target_id: m.id.to_string(),
                before,
                after: Some(json!({"name": m.name, "kind": m.kind, "schedule": m.schedule, "timezone": m.timezone, "params": m.params, "enabled": m.enabled, "missed_policy": m.missed_policy})),
            },
        )
        .await?;
        Ok(m)
    }

    /// Seed the built-in jobs on a fresh installation.
    pub async fn ensure_defaults(&self) -> Result<()> {
        if job::Entity::find().one(&self.ctx.db).await?.is_some() {
            return Ok(());
        }
        for (name, kind, schedule, params, enabled) in [
            (
                "Health sample rollup",
                "health_rollup",
                "*/15 * * * *",
                json!({}),
                true,
            ),
            (
                "Retention sweep",
                "retention_sweep",
                "17 * * * *",
                json!({"tier": "hot", "max_age_days": 30, "min_free_bytes": 5_000_000_000_i64}),
                true,
            ),
            (
                "Edge backfill",
                "edge_backfill",
                "*/10 * * * *",
                json!({}),
                true,
            ),
            (
                "Firmware audit",
                "firmware_audit",
                "0 7 * * 1",
                json!({}),
                true,
            ),
            (
                "Time sync check",
                "time_sync_check",
                "30 3 * * *",
                json!({"threshold_ms": 5000, "fix": false}),
                true,
            ),
            (
                "Configuration backup",
                "config_backup",
                "0 2 * * *",
                json!({}),
                true,
            ),
            (
                "Database maintenance",
                "database_maintenance",
                "0 4 * * 0",
                json!({"backup": true}),
                true,
            ),
            (
                "Storage scrub",
                "storage_scrub",
                "0 5 * * *",
                json!({"tier": "hot", "stride": 50}),
                true,
            ),
            (
                "Rediscovery sweep",
                "rediscovery",
                "0 6 * * *",
                json!({}),
                false,
            ),
        ] {
            self.save(
                None,
                name,
                kind,
                schedule,
                "UTC",
                params,
                enabled,
                "skip",
                &Actor::system(),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs left `running` by a node that is gone (this one before its
    /// restart, or a dead one) are interrupted; those of the nodes in
    /// `alive` are theirs and left alone.
    pub async fn recover(&self, alive: &[String]) -> Result<u64> {
        let r = job_run::Entity::update_many()
            .col_expr(
                job_run::Column::Outcome,
                sea_orm::sea_query::Expr::value("interrupted"),
            )
            .col_expr(
                job_run::Column::FinishedAt,
                sea_orm::sea_query::Expr::value(self.ctx.clock.now_utc()),
            )
            .filter(job_run::Column::Outcome.eq("running"))
            .filter(
                sea_orm::Condition::any()
                    .add(job_run::Column::Node.is_null())
                    .add(job_run::Column::Node.is_not_in(alive.iter().cloned())),
            )
            .exec(&self.ctx.db)
            .await?;
        Ok(r.rows_affected)
    }

    /// Start every due run. Returns the spawned runs (tests await them).
    pub async fn tick(self: &Arc<Self>) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let now = self.ctx.clock.now_utc();
        let mut started = Vec::new();
        for j in job::Entity::find()
            .filter(job::Column::Enabled.eq(true))
            .all(&self.ctx.db)
            .await?
        {
            let (Ok(schedule), Ok(tz)) = (parse_schedule(&j.schedule), parse_tz(&j.timezone))
            else {
                continue;
            };
            let since = j.last_scheduled_at.unwrap_or(j.created_at);
            let (run, handled) = due(&schedule, tz, since, now, &j.missed_policy);
            if let Some(h) = handled {
                // Compare-and-set: the slot is this node's only if the
                // schedule is still where it read it (another node, or a
                // leader that just took over, may have moved it).
                let moved = job::Entity::update_many()
                    .col_expr(
                        job::Column::LastScheduledAt,
                        sea_orm::sea_query::Expr::value(h),
                    )
                    .filter(job::Column::Id.eq(j.id))
                    .filter(match j.last_scheduled_at {
                        Some(at) => job::Column::LastScheduledAt.eq(at),
                        None => job::Column::LastScheduledAt.is_null(),
                    })
                    .exec(&self.ctx.db)
                    .await?;
                if moved.rows_affected == 0 {
                    tracing::info!(job = j.id, "schedule moved by another node; slot skipped");
                    continue;
                }
            }
            if let Some((slot, trigger)) = run
                && let Some(h) = self.start(j, trigger, Some(slot)).await?
            {
                started.push(h);
            }
        }
        Ok(started)
    }

    /// "Run now" (refused while a run of the job is going).
    pub async fn run_now(
        self: &Arc<Self>,
        id: i32,
        actor: &Actor,
    ) -> Result<tokio::task::JoinHandle<()>> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let j = self.get(id).await?;
        audit::record(
            &self.ctx.db,
            actor,
            self.ctx.clock.now_utc(),
            Entry {
                action: "job.run",
                target_kind: "job",
                target_id: id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        self.start(j, "manual", None)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Conflict, format!("job {id} is already running")))
    }

    /// Start a run unless one of this job is going (one at a time).
    async fn start(
        self: &Arc<Self>,
        j: job::Model,
        trigger: &str,
        slot: Option<DateTime<Utc>>,
    ) -> Result<Option<tokio::task::JoinHandle<()>>> {
        if !self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(j.id)
        {
            tracing::info!(job = j.id, "previous run still going; this slot is skipped");
            return Ok(None);
        }
        // Another node may be running it ("run now" there): one at a time
        // across the cluster too.
        let elsewhere = job_run::Entity::find()
            .filter(job_run::Column::JobId.eq(j.id))
            .filter(job_run::Column::Outcome.eq("running"))
            .one(&self.ctx.db)
            .await;
        if !matches!(elsewhere, Ok(None)) {
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&j.id);
            elsewhere?;
            tracing::info!(
                job = j.id,
                "a run is going on another node; this slot is skipped"
            );
            return Ok(None);
        }
        let run = match (job_run::ActiveModel {
            job_id: Set(j.id),
            trigger: Set(trigger.into()),
            scheduled_for: Set(slot),
            started_at: Set(self.ctx.clock.now_utc()),
            outcome: Set("running".into()),
            log: Set(String::new()),
            node: Set(Some(crate::fleet::cluster::this_node())),
            ..Default::default()
        })
        .insert(&self.ctx.db)
        .await
        {
            Ok(r) => r,
            Err(e) => {
                self.running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&j.id);
                return Err(e.into());
            }
        };
        let me = self.clone();
        Ok(Some(tokio::spawn(async move {
            let _mark = Running {
                set: &me.running,
                id: j.id,
            };
            let result = me.execute(&j).await;
            let (outcome, log) = match result {
                Ok(log) => ("ok", log),
                Err(e) => ("failed", e.to_string()),
            };
            let mut am = run.into_active_model();
            am.outcome = Set(outcome.into());
            am.log = Set(log.chars().take(100_000).collect());
            am.finished_at = Set(Some(me.ctx.clock.now_utc()));
            if let Err(e) = am.update(&me.ctx.db).await {
                tracing::warn!(job = j.id, error = %e, "recording a job run failed");
            }
        })))
    }

    /// Run one job's work; the log is what the run page shows.
    async fn execute(&self, j: &job::Model) -> Result<String> {
        let c = &self.ctx;
        let p = &j.params;
        let now = c.clock.now_utc();
        let tier = |name: &str| {
            c.tiers
                .get(name)
                .cloned()
                .ok_or_else(|| invalid(format!("no storage tier {name:?}")))
        };
        let kind = JobKind::parse(&j.kind)
            .ok_or_else(|| invalid(format!("unknown job kind {:?}", j.kind)))?;
        match kind {
            JobKind::HealthRollup => {
                let n = super::samples::rollup(&c.db, now.timestamp_millis()).await?;
                Ok(format!("rolled up {n} samples into 5-minute buckets"))
            }
            JobKind::RetentionSweep => {
                let policy: RetentionPolicy = serde_json::from_value(p.clone())
                    .map_err(|e| invalid(format!("parameters: {e}")))?;
                let store = tier(&policy.tier)?;
                let r = Ledger::new(c.db.clone())
                    .sweep(&store, &policy, now)
                    .await?;
                let mut log = format!(
                    "tier {}: deleted {} segments, {} bytes; by reason {:?}",
                    policy.tier, r.deleted, r.bytes, r.by_reason
                );
                if r.missing > 0 {
                    log.push_str(&format!("; {} ledger rows had no object", r.missing));
                }
                if r.low_space {
                    log.push_str("; STORAGE LOW: emergency purge ran");
                    let free = store.free_bytes().unwrap_or(0);
                    let queued = super::alerting::queue_system_notice(
                        &c.db,
                        now,
                        &format!("[critical] Storage low on tier {}", policy.tier),
                        "critical",
                        &format!(
                            "{} MiB free after purging {} segments ({} MiB); the threshold is {} MiB",
                            free / 1_048_576,
                            r.deleted,
                            r.bytes / 1_048_576,
                            policy.min_free_bytes.unwrap_or(0) / 1_048_576
                        ),
                        chrono::Duration::hours(1),
                    )
                    .await?;
                    log.push_str(&format!("; {queued} notifications queued"));
                }
                Ok(log)
            }
            JobKind::EdgeBackfill => {
                let Some(b) = &c.backfill else {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "edge backfill is not configured here",
                    ));
                };
                let r = b.run(None, crate::shutdown::never()).await?;
                let mut log = r.summary();
                for line in &r.log {
                    log.push('\n');
                    log.push_str(line);
                }
                if r.failed > 0 && r.failed == r.gaps {
                    Err(Error::new(ErrorKind::Unavailable, log))
                } else {
                    Ok(log)
                }
            }
            JobKind::TierMigration => {
                let from = p["from"].as_str().unwrap_or("hot").to_string();
                let to = p["to"].as_str().unwrap_or("cold").to_string();
                let days = p["after_days"].as_u64().unwrap_or(7) as u32;
                let (src, dst) = (tier(&from)?, tier(&to)?);
                let (n, bytes) = Ledger::new(c.db.clone())
                    .migrate((&from, &src), (&to, &dst), days, now, 10_000)
                    .await?;
                Ok(format!(
                    "moved {n} segments ({bytes} bytes) older than {days} days from {from} to {to}"
                ))
            }
            JobKind::StorageScrub => {
                let name = p["tier"].as_str().unwrap_or("hot").to_string();
                let stride = p["stride"].as_u64().unwrap_or(50) as usize;
                let problems = Ledger::new(c.db.clone())
                    .scrub(&name, tier(&name)?.as_ref(), stride)
                    .await?;
                if problems.is_empty() {
                    Ok(format!("tier {name}: every sampled segment verified"))
                } else {
                    Err(Error::new(
                        ErrorKind::Internal,
                        format!("{} problems:\n{}", problems.len(), problems.join("\n")),
                    ))
                }
            }
            JobKind::FirmwareAudit => {
                let images = c.firmware.images().await?;
                let devices = device::Entity::find().all(&c.db).await?;
                let mut behind = Vec::new();
                for d in &devices {
                    if let Some(a) = Firmware::approved_for(&images, &d.model)
                        && d.firmware != a.version
                    {
                        behind.push(format!(
                            "{} ({}): runs {}, approved {}",
                            crate::fleet::inventory::display_name(d),
                            d.model,
                            d.firmware,
                            a.version
                        ));
                    }
                }
                Ok(format!(
                    "{} of {} devices behind their approved firmware{}{}",
                    behind.len(),
                    devices.len(),
                    if behind.is_empty() { "" } else { ":\n" },
                    behind.join("\n")
                ))
            }
            JobKind::TimeSyncCheck => {
                let threshold = p["threshold_ms"].as_i64().unwrap_or(5000);
                let fix = p["fix"].as_bool().unwrap_or(false);
                let off: Vec<device::Model> = device::Entity::find()
                    .all(&c.db)
                    .await?
                    .into_iter()
                    .filter(|d| d.drift_ms.is_some_and(|m| m.abs() > threshold))
                    .collect();
                let mut log = format!("{} devices off by more than {threshold} ms", off.len());
                let mut still_off = 0;
                for d in &off {
                    log.push_str(&format!(
                        "\n{}: {} ms",
                        crate::fleet::inventory::display_name(d),
                        d.drift_ms.unwrap_or(0)
                    ));
                    if fix {
                        match c.provisioner.sync_time(d.id).await {
                            Ok(how) => log.push_str(&format!(" → {how}")),
                            Err(e) => {
                                still_off += 1;
                                log.push_str(&format!(" → not fixed: {e}"));
                            }
                        }
                    } else {
                        still_off += 1;
                    }
                }
                // A check that found clocks off (and did not fix them) did
                // its job and reports a problem: the run is not "ok".
                if still_off > 0 {
                    return Err(Error::new(ErrorKind::Conflict, log));
                }
                Ok(log)
            }
            JobKind::ConfigBackup => {
                let store = tier("hot")?;
                let devices = device::Entity::find()
                    .filter(device::Column::Status.is_in(["online", "degraded"]))
                    .all(&c.db)
                    .await?;
                let (mut ok, mut failed, mut camera_files) = (0, Vec::new(), 0);
                for d in &devices {
                    match c.provisioner.settings_snapshot(d.id).await {
                        Ok(snapshot) => {
                            let key = format!(
                                "config-backups/{}/{}.json",
                                d.id,
                                now.format("%Y%m%dT%H%M%SZ")
                            );
                            let body = serde_json::to_vec_pretty(&snapshot).unwrap_or_default();
                            store.put(&key, bytes::Bytes::from(body)).await?;
                            ok += 1;
                            // And the camera's own backup, where it offers one.
                            match c.provisioner.system_backup(d.id).await {
                                Ok(Some(files)) => {
                                    for f in files {
                                        let name: String = f
                                            .name
                                            .chars()
                                            .map(|ch| {
                                                if ch.is_ascii_alphanumeric() || ".-_".contains(ch)
                                                {
                                                    ch
                                                } else {
                                                    '_'
                                                }
                                            })
                                            .take(100)
                                            .collect();
                                        let key = format!(
                                            "config-backups/{}/{}-{name}",
                                            d.id,
                                            now.format("%Y%m%dT%H%M%SZ")
                                        );
                                        store.put(&key, bytes::Bytes::from(f.data)).await?;
                                        camera_files += 1;
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    failed.push(format!("device {}: camera backup: {e}", d.id))
                                }
                            }
                        }
                        Err(e) => failed.push(format!("device {}: {e}", d.id)),
                    }
                }
                let log = format!(
                    "saved {ok} of {} configurations and {camera_files} camera backup files{}{}",
                    devices.len(),
                    if failed.is_empty() { "" } else { "; failed:\n" },
                    failed.join("\n")
                );
                if failed.len() == devices.len() && !devices.is_empty() {
                    Err(Error::new(ErrorKind::Unavailable, log))
                } else {
                    Ok(log)
                }
            }
            JobKind::DatabaseMaintenance => {
                let backend = c.db.get_database_backend();
                let mut log = String::new();
                if backend == sea_orm::DatabaseBackend::Sqlite {
                    if p["backup"].as_bool().unwrap_or(false)
                        && let Some(dir) = &c.data_dir
                    {
                        let path = dir.join(format!("backup-{}.db", now.format("%Y%m%dT%H%M%SZ")));
                        let quoted = path.display().to_string().replace('\'', "''");
                        c.db.execute_unprepared(&format!("VACUUM INTO '{quoted}'"))
                            .await?;
                        let bytes = std::fs::read(&path).map_err(|e| {
                            Error::new(
                                ErrorKind::Internal,
                                format!("reading {}: {e}", path.display()),
                            )
                        })?;
                        let key = format!(
                            "db-backups/{}",
                            path.file_name()
                                .and_then(|f| f.to_str())
                                .unwrap_or("backup.db")
                        );
                        tier("hot")?.put(&key, bytes::Bytes::from(bytes)).await?;
                        let _ = std::fs::remove_file(&path);
                        log.push_str(&format!("backup stored as {key}\n"));
                    }
                    c.db.execute_unprepared("PRAGMA optimize").await?;
                    log.push_str("SQLite: PRAGMA optimize done");
                } else {
                    c.db.execute_unprepared("VACUUM (ANALYZE)").await?;
                    log.push_str("PostgreSQL: VACUUM (ANALYZE) done; back up with pg_dump or PITR");
                }
                Ok(log)
            }
            JobKind::Rediscovery => {
                let Some((svc, inv)) = &c.discovery else {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "discovery is not configured here",
                    ));
                };
                let kind = match p["cidr"].as_str() {
                    Some(cidr) => RunKind::Cidr {
                        cidr: cidr.parse().map_err(|e| invalid(format!("cidr: {e}")))?,
                        http_ports: sweep_ports(p).map_err(invalid)?,
                    },
                    None => RunKind::Multicast(None),
                };
                let run = svc.run(inv, kind, &Actor::system()).await?;
                Ok(format!(
                    "discovery run {}: {} found ({}); see /discovery/{}",
                    run.id, run.found, run.status, run.id
                ))
            }
        }
    }

    /// Run due jobs every `every` until shutdown.
    /// Only while `lead` says this node leads.
    pub async fn run_loop(
        self: Arc<Self>,
        every: std::time::Duration,
        lead: crate::fleet::cluster::Lead,
        mut shutdown: crate::shutdown::Shutdown,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if !lead.is_leader() {
                continue;
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "scheduling jobs failed");
            }
        }
    }
}

/// Parameters a kind understands, checked when the job is saved.
/// The HTTP ports a rediscovery sweep tries: the job's `ports`, or the
/// ports the discovery page's sweep tries.
fn sweep_ports(p: &serde_json::Value) -> std::result::Result<Vec<u16>, String> {
    match p.get("ports") {
        None => Ok(crate::discovery::sweep::HTTP_PORTS.to_vec()),
        Some(v) => {
            let ports: Vec<u16> = serde_json::from_value(v.clone())
                .map_err(|_| "ports: a list of port numbers, e.g. [80, 8080]".to_string())?;
            if ports.is_empty() || ports.len() > 8 || ports.contains(&0) {
                return Err("ports: one to eight port numbers (1-65535)".into());
            }
            Ok(ports)
        }
    }
}

fn check_params(kind: JobKind, p: &serde_json::Value) -> std::result::Result<(), String> {
    match kind {
        JobKind::RetentionSweep => serde_json::from_value::<RetentionPolicy>(p.clone())
            .map(|_| ())
            .map_err(|e| e.to_string()),
        JobKind::Rediscovery => {
            sweep_ports(p)?;
            match p.get("cidr") {
                Some(c) => {
                    let net = c
                        .as_str()
                        .ok_or("cidr: a string")?
                        .parse::<ipnet::Ipv4Net>()
                        .map_err(|e| format!("cidr: {e}"))?;
                    crate::discovery::sweep::check_range(&net).map_err(|e| format!("cidr: {e}"))
                }
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_kind_has_its_name_in_the_form_list_and_back() {
        assert_eq!(JobKind::ALL.map(JobKind::as_str), KINDS);
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(JobKind::parse("nonsense"), None);
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn schedules_time_zones_and_missed_runs() {
        let s = parse_schedule("30 2 * * *").unwrap();
        let berlin = parse_tz("Europe/Berlin").unwrap();
        // 02:30 in Berlin is 01:30 UTC in winter.
        let next = next_runs(&s, berlin, at("2026-11-26T10:00:00Z"), 5);
        assert_eq!(next[0], at("2026-11-27T01:30:00Z"));
        assert_eq!(next.len(), 5);
        assert!(parse_schedule("*/15 * * *").is_err());
        // Crontab weekdays: 0 and 7 are Sunday, 1 Monday.
        let sunday = parse_schedule("0 4 * * 0").unwrap();
        assert_eq!(
            next_runs(&sunday, chrono_tz::UTC, at("2026-11-26T10:00:00Z"), 1)[0],
            at("2026-11-29T04:00:00Z")
        );
        let weekdays = parse_schedule("0 4 * * 1-5").unwrap();
        assert_eq!(
            next_runs(&weekdays, chrono_tz::UTC, at("2026-11-27T10:00:00Z"), 1)[0],
            at("2026-11-30T04:00:00Z")
        );
        let weekend = parse_schedule("0 4 * * 6-7").unwrap();
        let w = next_runs(&weekend, chrono_tz::UTC, at("2026-11-26T10:00:00Z"), 2);
        assert_eq!(w, [at("2026-11-28T04:00:00Z"), at("2026-11-29T04:00:00Z")]);
        assert!(parse_tz("Mars/Olympus").is_err());
        // On time.
        let (run, handled) = due(
            &s,
            berlin,
            at("2026-11-26T10:00:00Z"),
            at("2026-11-27T01:31:00Z"),
            "skip",
        );
        assert_eq!(run, Some((at("2026-11-27T01:30:00Z"), "schedule")));
        assert_eq!(handled, Some(at("2026-11-27T01:30:00Z")));
        // camfleet was down for three days: skip, or one catch-up run.
        let (run, handled) = due(
            &s,
            berlin,
            at("2026-11-26T10:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            "skip",
        );
        assert_eq!(run, None);
        assert_eq!(handled, Some(at("2026-11-29T01:30:00Z")));
        let (run, _) = due(
            &s,
            berlin,
            at("2026-11-26T10:00:00Z"),
            at("2026-11-29T12:00:00Z"),
            "run_once",
        );
        assert_eq!(run, Some((at("2026-11-29T01:30:00Z"), "catch_up")));
        // Nothing due yet.
        assert_eq!(
            due(
                &s,
                berlin,
                at("2026-11-27T01:30:00Z"),
                at("2026-11-27T20:00:00Z"),
                "skip"
            ),
            (None, None)
        );
    }
}
