//! The Prometheus gauges read from the database at scrape time (device
//! counts by state, open alerts, the outbox, recorded bytes, recording
//! streams), scoped to the scraper's sites.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::Console;
use crate::db::entities::device;
use crate::error::Result;
use crate::fleet::audit::Actor;
use crate::fleet::health::HealthState;

impl Console {
    /// The gauges read from the database at scrape time, within the
    /// actor's sites; fleet-wide ones (the outbox, storage) only for those
    /// who see every site.
    /// `fleet`: include the fleet-wide gauges read from the database. In a
    /// cluster only the leading node does, so a sum over every node's
    /// scrape counts each camera, alert and delivery once.
    pub async fn metrics_text(
        &self,
        actor: &Actor,
        hot_free_bytes: Option<u64>,
        fleet: bool,
    ) -> Result<String> {
        let all = actor.scope.is_all();
        if !fleet {
            let mut out = String::from(
                "# Fleet-wide gauges (devices, alerts, deliveries, recordings) come from the node leading jobs.
",
            );
            if let (true, Some(free)) = (all, hot_free_bytes) {
                out.push_str(
                    "# HELP camfleet_storage_free_bytes Free bytes on the local storage tier.
# TYPE camfleet_storage_free_bytes gauge
",
                );
                out.push_str(&format!(
                    "camfleet_storage_free_bytes{{tier=\"hot\"}} {free}\n"
                ));
            }
            return Ok(out);
        }
        let rows: Vec<(String, i64)> = device::Entity::find()
            .filter(actor.scope.devices())
            .select_only()
            .column(device::Column::Status)
            .column_as(device::Column::Id.count(), "n")
            .group_by(device::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out = String::new();
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
            .filter(actor.scope.on(crate::db::entities::alert::Column::SiteId))
            .select_only()
            .column(crate::db::entities::alert::Column::State)
            .column(crate::db::entities::alert::Column::Severity)
            .column_as(crate::db::entities::alert::Column::Id.count(), "n")
            .group_by(crate::db::entities::alert::Column::State)
            .group_by(crate::db::entities::alert::Column::Severity)
            .into_tuple()
            .all(&self.db)
            .await?;
        out.push_str("# HELP camfleet_alerts Alerts not resolved, by state and severity.\n# TYPE camfleet_alerts gauge\n");
        for (st, sev, n) in alerts.iter().filter(|(st, _, _)| st != "resolved") {
            out.push_str(&format!(
                "camfleet_alerts{{state=\"{st}\",severity=\"{sev}\"}} {n}\n"
            ));
        }
        if all {
            let failed: Vec<(String, i64)> = crate::db::entities::delivery::Entity::find()
                .select_only()
                .column(crate::db::entities::delivery::Column::Status)
                .column_as(crate::db::entities::delivery::Column::Id.count(), "n")
                .group_by(crate::db::entities::delivery::Column::Status)
                .into_tuple()
                .all(&self.db)
                .await?;
            out.push_str("# HELP camfleet_deliveries Notifications in the outbox by status.\n# TYPE camfleet_deliveries gauge\n");
            for (st, n) in &failed {
                out.push_str(&format!("camfleet_deliveries{{status=\"{st}\"}} {n}\n"));
            }
            // Storage: the ledger's bytes per tier, and free space where it can be
            // measured (local tiers), so the NOC can alert before a purge.
            let totals = crate::fleet::recordings::Ledger::new(self.db.clone())
                .totals()
                .await?;
            out.push_str("# HELP camfleet_recorded_bytes Bytes in the recordings ledger by tier.\n# TYPE camfleet_recorded_bytes gauge\n");
            for (tier, _, bytes) in &totals {
                out.push_str(&format!(
                    "camfleet_recorded_bytes{{tier=\"{tier}\"}} {bytes}\n"
                ));
            }
            if let Some(free) = hot_free_bytes {
                out.push_str("# HELP camfleet_storage_free_bytes Free bytes on the local storage tier.\n# TYPE camfleet_storage_free_bytes gauge\n");
                out.push_str(&format!(
                    "camfleet_storage_free_bytes{{tier=\"hot\"}} {free}\n"
                ));
            }
        }
        // Recorded streams by how they fare (the device rows' recording status).
        let statuses: Vec<String> = device::Entity::find()
            .filter(actor.scope.devices())
            .select_only()
            .column(device::Column::RecordingStatus)
            .filter(device::Column::RecordProfile.is_not_null())
            .into_tuple()
            .all(&self.db)
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
        Ok(out)
    }
}
