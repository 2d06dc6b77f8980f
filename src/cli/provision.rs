//! `camfleet provision --profile NAME --where site=North [--dry-run]`:
//! the same plan and apply as the web page, for scripts and terminals,
//! with a progress bar on stderr and a table per device at the end.

use std::io::Write;

use clap::Args;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::serve::DataArgs;
use super::table::Table;
use crate::db::entities::{device, provision_item, site};
use crate::fleet::audit::Actor;
use crate::fleet::provision::{Action, Provisioner, SettingResult};

#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// The profile's name.
    #[arg(long)]
    pub profile: String,
    /// Which devices: `site=NAME`, `model=…`, `manufacturer=…`,
    /// `firmware=…` or `id=N`; repeat to narrow. None: every device.
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub filters: Vec<String>,
    /// Show the plan (current → desired per setting) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan or the per-device outcome as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

async fn select(db: &sea_orm::DatabaseConnection, filters: &[String]) -> anyhow::Result<Vec<i32>> {
    let mut q = device::Entity::find();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--where {f:?}: expected FIELD=VALUE"))?;
        q = match k.trim() {
            "site" => {
                let s = site::Entity::find()
                    .filter(site::Column::Name.eq(v.trim()))
                    .one(db)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no site named {v:?}"))?;
                q.filter(device::Column::SiteId.eq(s.id))
            }
            "model" => q.filter(device::Column::Model.eq(v.trim())),
            "manufacturer" => q.filter(device::Column::Manufacturer.eq(v.trim())),
            "firmware" => q.filter(device::Column::Firmware.eq(v.trim())),
            "id" => q.filter(device::Column::Id.eq(v.trim().parse::<i32>()?)),
            other => {
                anyhow::bail!("--where {other}: use site, model, manufacturer, firmware or id")
            }
        };
    }
    Ok(q.select_only()
        .column(device::Column::Id)
        .order_by_asc(device::Column::Id)
        .into_tuple()
        .all(db)
        .await?)
}

fn bar(done: u64, total: u64, failed: u64, message: &str) -> String {
    const W: u64 = 30;
    let filled = (W * done).checked_div(total).unwrap_or(0).min(W);
    format!(
        "\r[{}{}] {done}/{total}{} {}",
        "#".repeat(filled as usize),
        ".".repeat((W - filled) as usize),
        if failed > 0 {
            format!(" ({failed} failed)")
        } else {
            String::new()
        },
        message.chars().take(60).collect::<String>()
    )
}

pub async fn provision(a: ProvisionArgs) -> anyhow::Result<()> {
    let state = crate::app::build(&a.data.app_config()?).await?;
    let p = state.provisioner.clone();
    let profile = p.profile_by_name(&a.profile).await?;
    let spec = Provisioner::spec_of(&profile)?;
    let ids = select(&state.db, &a.filters).await?;
    if ids.is_empty() {
        anyhow::bail!("no devices match");
    }
    if a.dry_run {
        let plans = p.plan(&spec, &ids).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&plans)?);
            return Ok(());
        }
        let mut t = Table::new(&["device", "setting", "now", "wanted", "plan"]);
        for d in &plans {
            if let Some(e) = &d.error {
                t.row(vec![
                    d.name.clone(),
                    "-".into(),
                    String::new(),
                    String::new(),
                    format!("unreadable: {e}"),
                ]);
            }
            for s in &d.settings {
                t.row(vec![
                    d.name.clone(),
                    s.key.clone(),
                    s.current.clone(),
                    s.desired.clone(),
                    match &s.action {
                        Action::Same => "already".into(),
                        Action::Change => "change".into(),
                        Action::Cannot(w) => format!("cannot: {w}"),
                    },
                ]);
            }
        }
        print!("{}", t.render());
        let changes = plans
            .iter()
            .flat_map(|d| &d.settings)
            .filter(|s| s.action == Action::Change)
            .count();
        println!(
            "{} devices, {changes} settings to change (dry run: nothing changed)",
            plans.len()
        );
        return Ok(());
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let task = p
        .create_task(profile.id, &ids, &Actor::operator(&format!("cli:{user}")))
        .await?;
    let mut rx = p
        .progress
        .subscribe(task)
        .ok_or_else(|| anyhow::anyhow!("task {task} has no progress"))?;
    let runner = {
        let p = p.clone();
        tokio::spawn(async move { p.run(task).await })
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !a.json;
    loop {
        let pr = rx.borrow_and_update().clone();
        if tty {
            eprint!("{}", bar(pr.done, pr.total, pr.found, &pr.message));
            let _ = std::io::stderr().flush();
        }
        if pr.finished || rx.changed().await.is_err() {
            break;
        }
    }
    if tty {
        eprintln!();
    }
    runner.await??;
    let items = provision_item::Entity::find()
        .filter(provision_item::Column::TaskId.eq(task))
        .order_by_asc(provision_item::Column::Id)
        .all(&state.db)
        .await?;
    let names: std::collections::HashMap<i32, String> = device::Entity::find()
        .filter(device::Column::Id.is_in(ids.iter().copied()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|d| (d.id, crate::fleet::inventory::display_name(&d)))
        .collect();
    let mut t = Table::new(&["device", "outcome", "details"]);
    let mut bad = 0;
    let mut out = Vec::new();
    for i in &items {
        let results: Vec<SettingResult> =
            serde_json::from_value(i.detail.clone()).unwrap_or_default();
        let details = results
            .iter()
            .filter(|r| r.result != "already")
            .map(|r| {
                if r.message.is_empty() {
                    format!("{}: {}", r.key, r.result)
                } else {
                    format!("{}: {} ({})", r.key, r.result, r.message)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        if i.status == "failed" || i.status == "partial" {
            bad += 1;
        }
        let outcome = if i.step.is_empty() {
            i.status.clone()
        } else {
            format!("{} at {}", i.status, i.step)
        };
        out.push(serde_json::json!({
            "device_id": i.device_id,
            "device": names.get(&i.device_id).cloned().unwrap_or_default(),
            "status": i.status,
            "step": i.step,
            "results": results,
        }));
        t.row(vec![
            names.get(&i.device_id).cloned().unwrap_or_default(),
            outcome,
            details,
        ]);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"task": task, "devices": out}))?
        );
    } else {
        print!("{}", t.render());
        println!(
            "task {task}: see /provision/tasks/{task} (rotated passwords are shown there once)"
        );
    }
    if bad == items.len() && bad > 0 {
        anyhow::bail!("all {bad} devices failed");
    }
    if bad > 0 {
        return Err(crate::cli::PartialFailure(format!(
            "{bad} of {} devices failed or were partly changed",
            items.len()
        ))
        .into());
    }
    Ok(())
}
