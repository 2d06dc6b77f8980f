//! Prometheus `/metrics` (behind a login like every route: scrape with an
//! API token, `authorization: credentials: cf_…` in Prometheus). Counters
//! and the poll latency histogram come from the `metrics` facade the
//! poller feeds; device counts by state are read from the database at
//! scrape time, so every node reports the same fleet.

use std::sync::OnceLock;

use axum::extract::State as AxState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::State;
use super::error::WebError;
use crate::db::entities::device;
use crate::fleet::health::HealthState;
use crate::fleet::poller::{CycleReport, Notice};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls reuse it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "camfleet_poll_latency_seconds".into(),
                    ),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// `camfleet_build_info{version="…"} 1`: which build answers (the usual
/// Prometheus idiom; join on it to see versions across nodes).
pub fn build_info() -> String {
    format!(
        "# HELP camfleet_build_info The camfleet build serving these metrics.\n# TYPE camfleet_build_info gauge\ncamfleet_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Count one poll batch (the poller's callback calls this).
pub fn record_cycle(r: &CycleReport) {
    metrics::counter!("camfleet_polls_total", "outcome" => "answered").increment(r.answered as u64);
    for (class, n) in &r.failed_by_class {
        metrics::counter!("camfleet_poll_errors_total", "class" => *class).increment(*n as u64);
    }
    for n in &r.notices {
        if let Notice::Transition { to, .. } = n {
            metrics::counter!("camfleet_state_transitions_total", "to" => to.as_str()).increment(1);
        }
    }
}

pub async fn metrics(AxState(state): AxState<State>) -> Result<Response, WebError> {
    let rows: Vec<(String, i64)> = device::Entity::find()
        .select_only()
        .column(device::Column::Status)
        .column_as(device::Column::Id.count(), "n")
        .group_by(device::Column::Status)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut out = build_info();
    out.push_str(
        "# HELP camfleet_devices Adopted devices by health state.\n# TYPE camfleet_devices gauge\n",
    );
    for s in HealthState::ALL {
        let n: i64 = rows
            .iter()
            .filter(|(st, _)| HealthState::parse(st) == s)
            .map(|(_, n)| n)
            .sum();
        out.push_str(&format!(
            "camfleet_devices{{state=\"{}\"}} {n}\n",
            s.as_str()
        ));
    }
    let alerts: Vec<(String, String, i64)> = crate::db::entities::alert::Entity::find()
        .select_only()
        .column(crate::db::entities::alert::Column::State)
        .column(crate::db::entities::alert::Column::Severity)
        .column_as(crate::db::entities::alert::Column::Id.count(), "n")
        .group_by(crate::db::entities::alert::Column::State)
        .group_by(crate::db::entities::alert::Column::Severity)
        .into_tuple()
        .all(&state.db)
        .await?;
    out.push_str("# HELP camfleet_alerts Alerts not resolved, by state and severity.\n# TYPE camfleet_alerts gauge\n");
    for (st, sev, n) in alerts.iter().filter(|(st, _, _)| st != "resolved") {
        out.push_str(&format!(
            "camfleet_alerts{{state=\"{st}\",severity=\"{sev}\"}} {n}\n"
        ));
    }
    let failed: Vec<(String, i64)> = crate::db::entities::delivery::Entity::find()
        .select_only()
        .column(crate::db::entities::delivery::Column::Status)
        .column_as(crate::db::entities::delivery::Column::Id.count(), "n")
        .group_by(crate::db::entities::delivery::Column::Status)
        .into_tuple()
        .all(&state.db)
        .await?;
    out.push_str("# HELP camfleet_deliveries Notifications in the outbox by status.\n# TYPE camfleet_deliveries gauge\n");
    for (st, n) in &failed {
        out.push_str(&format!("camfleet_deliveries{{status=\"{st}\"}} {n}\n"));
    }
    // Storage: the ledger's bytes per tier, and free space where it can be
    // measured (local tiers), so the NOC can alert before a purge.
    let totals = crate::fleet::recordings::Ledger::new(state.db.clone())
        .totals()
        .await?;
    out.push_str("# HELP camfleet_recorded_bytes Bytes in the recordings ledger by tier.\n# TYPE camfleet_recorded_bytes gauge\n");
    for (tier, _, bytes) in &totals {
        out.push_str(&format!(
            "camfleet_recorded_bytes{{tier=\"{tier}\"}} {bytes}\n"
        ));
    }
    if let Some(free) = state.storage.free_bytes() {
        out.push_str("# HELP camfleet_storage_free_bytes Free bytes on the local storage tier.\n# TYPE camfleet_storage_free_bytes gauge\n");
        out.push_str(&format!(
            "camfleet_storage_free_bytes{{tier=\"hot\"}} {free}\n"
        ));
    }
    // Recorded streams by how they fare (the device rows' recording status).
    let statuses: Vec<String> = device::Entity::find()
        .select_only()
        .column(device::Column::RecordingStatus)
        .filter(device::Column::RecordProfile.is_not_null())
        .into_tuple()
        .all(&state.db)
        .await?;
    let recording = statuses
        .iter()
        .filter(|s| s.starts_with("recording"))
        .count();
    out.push_str("# HELP camfleet_recording_streams Streams a recording policy asks for, by whether they are being recorded.\n# TYPE camfleet_recording_streams gauge\n");
    out.push_str(&format!(
        "camfleet_recording_streams{{state=\"recording\"}} {recording}\ncamfleet_recording_streams{{state=\"not_recording\"}} {}\n",
        statuses.len() - recording
    ));
    if let Some(h) = handle() {
        out.push_str(&h.render());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
