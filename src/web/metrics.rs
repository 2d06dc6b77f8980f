//! Prometheus `/metrics` (behind a login like every route: scrape with an
//! API token, `authorization: credentials: cf_…` in Prometheus; the
//! token's user's sites limit what it reports). Counters
//! and the poll latency histogram come from the `metrics` facade the
//! poller feeds; device counts by state are read from the database at
//! scrape time, so every node reports the same fleet.

use std::sync::OnceLock;

use axum::extract::State as AxState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::State;
use super::error::WebError;
use crate::fleet::poller::{CycleReport, Notice};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder (once; later calls reuse it), with
/// its upkeep: histogram samples wait in the recorder until upkeep (or a
/// scrape) folds them into the buckets, so a camfleet nobody scraped kept
/// every poll's latency sample (found by a heap profile of the soak).
pub fn handle() -> Option<&'static PrometheusHandle> {
    let h = HANDLE.get_or_init(|| {
        let h = install()?;
        let upkeep = h.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .ok()?;
        Some(h)
    });
    h.as_ref()
}

fn install() -> Option<PrometheusHandle> {
    PrometheusBuilder::new()
        // Each node counts its own polls, sends and segments: labelled by
        // node, a sum over the nodes counts each once.
        .add_global_label("node", crate::fleet::cluster::this_node())
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("camfleet_poll_latency_seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )
        .ok()?
        // Per-stream gauges of a camera no longer recorded go
        // after five minutes without an update (they come every
        // 10 s while it records).
        .idle_timeout(
            metrics_util::MetricKindMask::GAUGE,
            Some(std::time::Duration::from_secs(300)),
        )
        .install_recorder()
        .ok()
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

/// `/metrics`: scoped to the scraper (a token of a user limited to sites
/// sees those sites' devices and alerts; process-wide counters and
/// fleet-wide gauges only for those who see every site).
pub async fn metrics(
    AxState(state): AxState<State>,
    axum::Extension(me): axum::Extension<super::auth::CurrentUser>,
) -> Result<Response, WebError> {
    let actor = me.actor();
    let mut out = build_info();
    let fleet = state
        .cluster
        .as_ref()
        .is_none_or(|c| c.jobs_lead().is_leader());
    out.push_str(
        &state
            .console
            .metrics_text(&actor, state.storage.free_bytes(), fleet)
            .await?,
    );
    if actor.scope.is_all()
        && let Some(c) = &state.cluster
    {
        out.push_str(&c.metrics_text());
    }
    if actor.scope.is_all()
        && let Some(h) = handle()
    {
        out.push_str(&h.render());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}
