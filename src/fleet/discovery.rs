//! Discovery runs: find cameras (multicast, unicast host list, CIDR sweep),
//! store what answered, classified against the inventory as new, already
//! managed, or managed-but-moved; then adopt a selection of them.

use std::net::Ipv4Addr;
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::inventory::{Change, Identity, Inventory};
use super::progress::Reporter;
use crate::clock::SharedClock;
use crate::db::entities::{discovery_result, discovery_run};
use crate::discovery::interfaces::HostInterface;
use crate::discovery::{self, Discovered, ProbeConfig, SweepConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::onvif::{self, AdoptRequest, Credentials, DevicePolicy, Transport};

/// Where discovery multicasts and how long it listens. The default has no
/// interface: nothing is multicast until the operator configures one
/// (`serve --discovery-interface`, `[discovery] interfaces`). The demo and
/// the tests use [`DiscoveryConfig::loopback`].
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    pub interfaces: Vec<HostInterface>,
    pub port: u16,
    pub window: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            port: discovery::socket::PORT,
            window: Duration::from_secs(3),
        }
    }
}

impl DiscoveryConfig {
    /// Multicast on loopback only: the demo and the tests.
    pub fn loopback() -> Self {
        Self {
            interfaces: vec![HostInterface {
                name: "lo".into(),
                addr: Ipv4Addr::LOCALHOST,
                prefix_len: 8,
                up: true,
                loopback: true,
                multicast: true,
                arp: false,
            }],
            ..Self::default()
        }
    }
}

/// What the discovery page shows about interfaces: the configured ones, and
/// this host's (so an operator who has configured none sees what to name).
#[derive(Debug, Clone)]
pub struct InterfaceView {
    pub configured: Vec<HostInterface>,
    pub host: Vec<HostInterface>,
}

#[derive(Debug, Clone)]
pub enum RunKind {
    /// On one configured interface (its address), or on every one.
    Multicast(Option<Ipv4Addr>),
    Unicast(Vec<Ipv4Addr>),
    Cidr {
        cidr: ipnet::Ipv4Net,
        http_ports: Vec<u16>,
    },
}

impl RunKind {
    /// From the run form or the API's fields; errors name the field.
    /// `interface` is the multicast interface's address, or empty for
    /// every configured one.
    pub fn parse(
        kind: &str,
        target: &str,
        interface: &str,
    ) -> std::result::Result<RunKind, String> {
        match kind {
            "multicast" => match interface.trim() {
                "" => Ok(RunKind::Multicast(None)),
                i => i
                    .parse()
                    .map(|ip| RunKind::Multicast(Some(ip)))
                    .map_err(|_| "Interface: choose one of the configured interfaces".to_string()),
            },
            "unicast" => {
                let hosts: Result<Vec<std::net::Ipv4Addr>, _> = target
                    .split([',', ' ', '\n'])
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse())
                    .collect();
                match hosts {
                    Ok(h) if !h.is_empty() && h.len() <= 256 => Ok(RunKind::Unicast(h)),
                    Ok(h) if h.is_empty() => Err("Hosts: give at least one IPv4 address".into()),
                    Ok(_) => Err("Hosts: at most 256 addresses; use a CIDR sweep for more".into()),
                    Err(_) => Err("Hosts: IPv4 addresses separated by commas".into()),
                }
            }
            "cidr" => {
                let cidr: ipnet::Ipv4Net = target
                    .trim()
                    .parse()
                    .map_err(|_| "Range: a CIDR such as 10.20.0.0/24".to_string())?;
                crate::discovery::sweep::check_range(&cidr).map_err(|e| format!("Range: {e}"))?;
                Ok(RunKind::Cidr {
                    cidr,
                    http_ports: crate::discovery::sweep::HTTP_PORTS.to_vec(),
                })
            }
            _ => Err("Kind: choose multicast, unicast or cidr".into()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            RunKind::Multicast(_) => "multicast",
            RunKind::Unicast(_) => "unicast",
            RunKind::Cidr { .. } => "cidr",
        }
    }

    fn params(&self) -> serde_json::Value {
        match self {
            RunKind::Multicast(None) => json!({}),
            RunKind::Multicast(Some(i)) => json!({"interface": i.to_string()}),
            RunKind::Unicast(h) => json!({"hosts": h}),
            RunKind::Cidr { cidr, http_ports } => {
                json!({"cidr": cidr.to_string(), "http_ports": http_ports})
            }
        }
    }
}

/// What happened to one selected result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AdoptOutcome {
    pub result_id: i32,
    pub endpoint: String,
    pub device_id: Option<i32>,
    pub change: Option<Change>,
    /// The step that failed and why, when it failed.
    pub failed: Option<String>,
}

/// Distinct Hellos one listening session keeps as discovery results.
const MAX_HELLOS_KEPT: usize = 10_000;

/// What a technician is told when no discovery interface is configured.
pub const NO_INTERFACE_HINT: &str = "Multicast discovery is off: no discovery interface is configured. \
Set `[discovery] interfaces = [\"ADDRESS\"]` (or [\"auto\"]) in the config file, \
CAMFLEET_DISCOVERY_INTERFACE, or `serve --discovery-interface ADDRESS`, then restart. \
Unicast probes and CIDR sweeps work without it.";

pub struct DiscoveryService {
    pub config: DiscoveryConfig,
    transport: Transport,
    clock: SharedClock,
}

impl DiscoveryService {
    pub fn new(config: DiscoveryConfig, transport: Transport, clock: SharedClock) -> Self {
        Self {
            config,
            transport,
            clock,
        }
    }

    /// The HTTP transport shared with other camera work (snapshots).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The configured interfaces and this host's, for the discovery page.
    pub fn interface_view(&self) -> InterfaceView {
        InterfaceView {
            configured: self.config.interfaces.clone(),
            host: discovery::interfaces::host_interfaces().unwrap_or_default(),
        }
    }

    /// The configured interfaces a multicast run uses: the one named, or all.
    pub fn multicast_interfaces(&self, only: Option<Ipv4Addr>) -> Result<Vec<HostInterface>> {
        if self.config.interfaces.is_empty() {
            return Err(Error::new(ErrorKind::InvalidArgument, NO_INTERFACE_HINT));
        }
        match only {
            None => Ok(self.config.interfaces.clone()),
            Some(a) => self
                .config
                .interfaces
                .iter()
                .find(|i| i.addr == a)
                .cloned()
                .map(|i| vec![i])
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "Interface: {a} is not a configured discovery interface ({})",
                            discovery::interfaces::describe(&self.config.interfaces)
                        ),
                    )
                }),
        }
    }

    async fn find(&self, kind: &RunKind, progress: &Reporter) -> Result<Vec<Discovered>> {
        let probe = ProbeConfig {
            port: self.config.port,
            window: self.config.window,
            ..ProbeConfig::default()
        };
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::new(ErrorKind::Unavailable, format!("discovery: {e}"))
        };
        let found = match kind {
            RunKind::Multicast(only) => {
                // Every interface at once; an endpoint heard on two links
                // is kept once, with the interface that answered first.
                let ifaces = self.multicast_interfaces(*only)?;
                let rounds = ifaces.iter().map(|ifc| {
                    let cfg = ProbeConfig {
                        interface: ifc.addr,
                        ..probe.clone()
                    };
                    async move {
                        discovery::probe::multicast(&cfg, |_| progress.update(|p| p.found += 1))
                            .await
                            .map(|r| (ifc.label(), r.devices))
                    }
                });
                let mut seen = std::collections::HashSet::new();
                let mut all = Vec::new();
                for r in futures::future::join_all(rounds).await {
                    let (label, devices) = r.map_err(|e| unavailable(&e))?;
                    for mut d in devices {
                        if seen.insert(d.endpoint.clone()) {
                            d.interface = Some(label.clone());
                            all.push(d);
                        }
                    }
                }
                return Ok(all);
            }
            RunKind::Unicast(hosts) => {
                let mut all = Vec::new();
                progress.update(|p| p.total = hosts.len() as u64);
                for h in hosts {
                    let r = discovery::probe::unicast(&probe, *h, |_| {
                        progress.update(|p| p.found += 1)
                    })
                    .await
                    .map_err(|e| unavailable(&e))?;
                    all.extend(r.devices);
                    progress.update(|p| p.done += 1);
                }
                all
            }
            RunKind::Cidr { cidr, http_ports } => {
                let mut cfg = SweepConfig::new(*cidr);
                cfg.wsd_port = self.config.port;
                cfg.http_ports = http_ports.clone();
                discovery::sweep::sweep(&cfg, |sp, _| {
                    progress.update(|p| {
                        p.total = sp.hosts_total + sp.http_total;
                        p.done = sp.probes_sent + sp.http_checked;
                        p.found = sp.found;
                    })
                })
                .await
                .map_err(|e| unavailable(&e))?
            }
        };
        // Unicast answers came the way the routing table chose: name the
        // local interface whose subnet holds the camera, if one does.
        let host = discovery::interfaces::host_interfaces().unwrap_or_default();
        Ok(found
            .into_iter()
            .map(|mut d| {
                if let std::net::IpAddr::V4(ip) = d.source.ip() {
                    d.interface = host
                        .iter()
                        .find(|i| {
                            ipnet::Ipv4Net::new(i.addr, i.prefix_len).is_ok_and(|n| n.contains(&ip))
                        })
                        .map(HostInterface::label);
                }
                d
            })
            .collect())
    }

    /// Run a discovery to the end and store its classified results.
    pub async fn run(
        &self,
        inv: &Inventory,
        kind: RunKind,
        actor: &Actor,
    ) -> Result<discovery_run::Model> {
        let run = self.create_run(inv.db(), &kind, None, actor).await?;
        self.execute(inv, run, kind, &Reporter::detached(), actor)
            .await
    }

    /// Record a run as started (the page can show it at once).
    pub async fn create_run(
        &self,
        db: &DatabaseConnection,
        kind: &RunKind,
        site_id: Option<i32>,
        actor: &Actor,
    ) -> Result<discovery_run::Model> {
        Ok(discovery_run::ActiveModel {
            kind: Set(kind.name().into()),
            params: Set(kind.params()),
            started_by: Set(actor.name.clone()),
            started_at: Set(self.clock.now_utc()),
            status: Set("running".into()),
            found: Set(0),
            site_id: Set(site_id),
            ..Default::default()
        }
        .insert(db)
        .await?)
    }

    /// Do a created run: probe, classify and store what answered, reporting
    /// progress as it goes. The run row ends `done` or `failed: …`.
    pub async fn execute(
        &self,
        inv: &Inventory,
        run: discovery_run::Model,
        kind: RunKind,
        progress: &Reporter,
        actor: &Actor,
    ) -> Result<discovery_run::Model> {
        let db = inv.db();
        let started = run.started_at;
        progress.update(|p| p.phase = "discovering".into());
        let found = self.find(&kind, progress).await;
        let mut am = run.clone().into_active_model();
        am.finished_at = Set(Some(self.clock.now_utc()));
        let devices = match found {
            Ok(d) => d,
            Err(e) => {
                am.status = Set(format!("failed: {}", e.message));
                am.update(db).await?;
                progress.finish("failed", e.message.clone());
                return Err(e);
            }
        };
        for d in &devices {
            self.store_result(inv, run.id, d).await?;
        }
        am.status = Set("done".into());
        am.found = Set(devices.len() as i32);
        let run = am.update(db).await?;
        audit::record(
            db,
            actor,
            started,
            Entry {
                action: "discovery.run",
                target_kind: "discovery_run",
                target_id: run.id.to_string(),
                before: None,
                after: Some(json!({"kind": run.kind, "params": run.params, "found": run.found})),
            },
        )
        .await?;
        progress.finish("done", format!("{} found", run.found));
        Ok(run)
    }

    /// Store one answer of a run, classified against the inventory.
    async fn store_result(
        &self,
        inv: &Inventory,
        run_id: i32,
        d: &Discovered,
    ) -> Result<discovery_result::Model> {
        let endpoint = (d.via != "http").then_some(d.endpoint.as_str());
        let (device_id, class) = match inv
            .find_by_identity(&Identity {
                endpoint_uuid: endpoint,
                mac: d.scopes.mac.as_deref(),
                serial: None,
            })
            .await?
        {
            Some((dev, _)) if d.xaddrs.contains(&dev.device_url) => (Some(dev.id), "managed"),
            Some((dev, _)) => (Some(dev.id), "moved"),
            None => (None, "new"),
        };
        Ok(discovery_result::ActiveModel {
            run_id: Set(run_id),
            endpoint: Set(d.endpoint.clone()),
            xaddrs: Set(json!(d.xaddrs)),
            scopes: Set(serde_json::to_value(&d.scopes).unwrap_or(json!({}))),
            source: Set(d.source.to_string()),
            via: Set(d.via.into()),
            device_id: Set(device_id),
            classification: Set(class.into()),
            interface: Set(d.interface.clone()),
            ..Default::default()
        }
        .insert(inv.db())
        .await?)
    }

    /// Listen for Hello/Bye on every configured interface until shutdown.
    /// Hellos are kept as the results of a standing discovery run of kind
    /// `hello` (one per listening session), so a camera plugged in shows up
    /// on the discovery page, classified and ready to adopt. Byes are
    /// logged. Returns at once when no interface is configured.
    pub async fn listen_hellos(&self, inv: &Inventory, mut shutdown: crate::shutdown::Shutdown) {
        use crate::discovery::hello::{Announcement, HelloListener};
        if self.config.interfaces.is_empty() {
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Announcement)>(256);
        let mut listeners = Vec::new();
        for ifc in &self.config.interfaces {
            let (itx, mut irx) = tokio::sync::mpsc::channel(64);
            let l = HelloListener {
                interface: ifc.addr,
                port: self.config.port,
            };
            let label = ifc.label();
            let sd = shutdown.clone();
            listeners.push(tokio::spawn(async move {
                if let Err(e) = l.run(itx, sd).await {
                    tracing::warn!(interface = %label, error = %e, "Hello/Bye listener stopped");
                }
            }));
            let tx = tx.clone();
            let label = ifc.label();
            tokio::spawn(async move {
                while let Some(a) = irx.recv().await {
                    if tx.send((label.clone(), a)).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        tracing::info!(
            interfaces = %discovery::interfaces::describe(&self.config.interfaces),
            "listening for WS-Discovery Hello/Bye"
        );
        let mut run: Option<discovery_run::Model> = None;
        let mut heard = std::collections::HashSet::new();
        loop {
            let (label, ann) = tokio::select! {
                _ = shutdown.wait() => break,
                a = rx.recv() => match a { Some(a) => a, None => break },
            };
            match ann {
                Announcement::Hello(mut d) => {
                    tracing::info!(endpoint = %d.endpoint, source = %d.source, interface = %label, "Hello");
                    if heard.contains(&d.endpoint) {
                        continue;
                    }
                    // Anyone on the link can send Hellos: a flood of made-up
                    // endpoints must not fill the database.
                    if heard.len() >= MAX_HELLOS_KEPT {
                        tracing::warn!(
                            kept = MAX_HELLOS_KEPT,
                            "Hello ignored: this listening session has kept as many as it keeps"
                        );
                        continue;
                    }
                    heard.insert(d.endpoint.clone());
                    d.interface = Some(label);
                    if let Err(e) = self.record_hello(inv, &mut run, &d).await {
                        tracing::warn!(error = %e, "storing a Hello");
                    }
                }
                Announcement::Bye { endpoint, source } => {
                    tracing::info!(%endpoint, %source, interface = %label, "Bye");
                }
            }
        }
        if let Some(r) = run {
            let mut am = r.into_active_model();
            am.status = Set("done".into());
            am.finished_at = Set(Some(self.clock.now_utc()));
            if let Err(e) = am.update(inv.db()).await {
                tracing::warn!(error = %e, "closing the Hello run");
            }
        }
        for l in listeners {
            let _ = l.await;
        }
    }

    async fn record_hello(
        &self,
        inv: &Inventory,
        run: &mut Option<discovery_run::Model>,
        d: &Discovered,
    ) -> Result<()> {
        let r = match run {
            Some(r) => r.clone(),
            None => {
                let r = discovery_run::ActiveModel {
                    kind: Set("hello".into()),
                    params: Set(json!({})),
                    started_by: Set(Actor::system().name),
                    started_at: Set(self.clock.now_utc()),
                    status: Set("listening".into()),
                    found: Set(0),
                    site_id: Set(None),
                    ..Default::default()
                }
                .insert(inv.db())
                .await?;
                *run = Some(r.clone());
                r
            }
        };
        self.store_result(inv, r.id, d).await?;
        let mut am = r.into_active_model();
        am.found = Set(am.found.take().unwrap_or(0) + 1);
        *run = Some(am.update(inv.db()).await?);
        Ok(())
    }

    pub async fn runs(&self, db: &DatabaseConnection) -> Result<Vec<discovery_run::Model>> {
        use sea_orm::QuerySelect;
        Ok(discovery_run::Entity::find()
            .order_by_desc(discovery_run::Column::Id)
            .limit(50)
            .all(db)
            .await?)
    }

    /// One run, if it exists.
    pub async fn get_run(
        &self,
        db: &DatabaseConnection,
        id: i32,
    ) -> Result<Option<discovery_run::Model>> {
        Ok(discovery_run::Entity::find_by_id(id).one(db).await?)
    }

    pub async fn results(
        &self,
        db: &DatabaseConnection,
        run_id: i32,
    ) -> Result<Vec<discovery_result::Model>> {
        Ok(discovery_result::Entity::find()
            .filter(discovery_result::Column::RunId.eq(run_id))
            .order_by_asc(discovery_result::Column::Id)
            .all(db)
            .await?)
    }

    /// Adopt one camera by its device service address (no discovery run):
    /// the outcome names the failed step, or the device and what changed.
    pub async fn adopt_url(
        &self,
        inv: &Inventory,
        device_url: &str,
        creds: Credentials,
        site_id: Option<i32>,
        actor: &Actor,
    ) -> Result<AdoptOutcome> {
        let req = AdoptRequest {
            xaddrs: vec![device_url.to_string()],
            credentials: Some(creds.clone()),
            policy: DevicePolicy::default(),
        };
        let outcome = match onvif::adopt::adopt(&self.transport, &self.clock, req).await {
            Ok(adopted) => {
                let (d, change) = inv
                    .record_adoption(&adopted, None, &[], Some(&creds), site_id, actor)
                    .await?;
                AdoptOutcome {
                    result_id: 0,
                    endpoint: device_url.to_string(),
                    device_id: Some(d.id),
                    change: Some(change),
                    failed: None,
                }
            }
            Err(e) => AdoptOutcome {
                result_id: 0,
                endpoint: device_url.to_string(),
                device_id: None,
                change: None,
                failed: Some(format!(
                    "failed at step {}: {} ({})",
                    e.step, e.error.class, e.error.message
                )),
            },
        };
        Ok(outcome)
    }

    /// Adopt selected results of a run, each with its own credentials, a
    /// bounded number at a time; every device gets its own outcome, stored
    /// on its result row as it is known.
    pub async fn adopt(
        &self,
        inv: &Inventory,
        run_id: i32,
        selection: &[(i32, Credentials)],
        site_id: Option<i32>,
        actor: &Actor,
        progress: &Reporter,
    ) -> Result<Vec<AdoptOutcome>> {
        let all = self.results(inv.db(), run_id).await?;
        let chosen: Vec<(discovery_result::Model, Credentials)> = all
            .into_iter()
            .filter_map(|r| {
                let c = selection.iter().find(|(id, _)| *id == r.id)?.1.clone();
                Some((r, c))
            })
            .collect();
        if chosen.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "select at least one device to adopt",
            ));
        }
        progress.update(|p| {
            p.phase = "adopting".into();
            p.total = chosen.len() as u64;
            p.done = 0;
            p.finished = false;
        });
        let requests: Vec<AdoptRequest> = chosen
            .iter()
            .map(|(r, c)| AdoptRequest {
                xaddrs: serde_json::from_value(r.xaddrs.clone()).unwrap_or_default(),
                credentials: Some(c.clone()),
                policy: DevicePolicy::default(),
            })
            .collect();
        let results =
            onvif::adopt::adopt_many(&self.transport, &self.clock, requests, 32, |_, _| {
                progress.update(|p| p.done += 1)
            })
            .await;
        let mut out = Vec::with_capacity(chosen.len());
        for ((r, creds), res) in chosen.iter().zip(results) {
            let mut row = r.clone().into_active_model();
            let outcome = match res {
                Ok(adopted) => {
                    let endpoint = (r.via != "http").then_some(r.endpoint.as_str());
                    let xaddrs: Vec<String> =
                        serde_json::from_value(r.xaddrs.clone()).unwrap_or_default();
                    match inv
                        .record_adoption(&adopted, endpoint, &xaddrs, Some(creds), site_id, actor)
                        .await
                    {
                        Ok((d, change)) => {
                            // The run now shows this answer as a managed device.
                            row.device_id = Set(Some(d.id));
                            row.classification = Set("managed".into());
                            AdoptOutcome {
                                result_id: r.id,
                                endpoint: r.endpoint.clone(),
                                device_id: Some(d.id),
                                change: Some(change),
                                failed: None,
                            }
                        }
                        // Refused for this camera (another site's): the
                        // others go on.
                        Err(e) if e.kind == ErrorKind::PermissionDenied => AdoptOutcome {
                            result_id: r.id,
                            endpoint: r.endpoint.clone(),
                            device_id: None,
                            change: None,
                            failed: Some(format!("refused: {}", e.message)),
                        },
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => AdoptOutcome {
                    result_id: r.id,
                    endpoint: r.endpoint.clone(),
                    device_id: None,
                    change: None,
                    failed: Some(format!(
                        "failed at step {}: {} ({})",
                        e.step, e.error.class, e.error.message
                    )),
                },
            };
            row.outcome = Set(serde_json::to_string(&outcome).ok());
            row.update(inv.db()).await?;
            out.push(outcome);
        }
        let failed = out.iter().filter(|o| o.failed.is_some()).count();
        progress.finish(
            "done",
            format!("{} adopted, {failed} failed", out.len() - failed),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_form_is_validated_per_field() {
        assert!(matches!(
            RunKind::parse("multicast", "", ""),
            Ok(RunKind::Multicast(None))
        ));
        assert!(matches!(
            RunKind::parse("multicast", "", "10.0.0.5"),
            Ok(RunKind::Multicast(Some(ip))) if ip.to_string() == "10.0.0.5"
        ));
        assert!(
            RunKind::parse("multicast", "", "eth0")
                .unwrap_err()
                .starts_with("Interface")
        );
        assert!(
            matches!(RunKind::parse("unicast", "127.0.0.1, 127.0.0.2", ""), Ok(RunKind::Unicast(h)) if h.len() == 2)
        );
        assert!(
            RunKind::parse("unicast", "", "")
                .unwrap_err()
                .starts_with("Hosts")
        );
        assert!(
            RunKind::parse("unicast", "cam.example", "")
                .unwrap_err()
                .starts_with("Hosts")
        );
        assert!(
            RunKind::parse("cidr", "10.0.0.0/8", "")
                .unwrap_err()
                .contains("/16")
        );
        assert!(
            RunKind::parse("cidr", "nonsense", "")
                .unwrap_err()
                .starts_with("Range")
        );
        assert!(RunKind::parse("telepathy", "", "").is_err());
    }
}
