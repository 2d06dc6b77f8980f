//! Provisioning tasks: a row per device, worked with bounded concurrency
//! and live progress; interrupted by a restart, resumed on request; a
//! rotated password sealed until it is shown once.

use super::*;

impl Provisioner {
    /// Create a task for these devices (rows only; `run` does the work).
    /// The task keeps the profile's spec as it is now: a later edit of the
    /// profile does not change what this task writes. Every device must
    /// be within the actor's sites, and a site's profile applies only to
    /// that site's devices.
    pub async fn create_task(&self, profile_id: i32, ids: &[i32], actor: &Actor) -> Result<i32> {
        let now = self.clock.now_utc();
        let profile = self.profile_for(actor, profile_id).await?;
        let sites = self.sites_of_devices(ids).await?;
        if !actor.scope.covers(sites.iter().copied()) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "some of these devices are outside the sites you manage",
            ));
        }
        if profile.site_id.is_some() && sites.iter().any(|s| *s != profile.site_id) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "this profile belongs to one site; select devices of that site only",
            ));
        }
        let task = provision_task::ActiveModel {
            spec: Set(Some(profile.spec.clone())),
            profile_id: Set(profile_id),
            status: Set("running".into()),
            created_by: Set(actor.name.clone()),
            created_at: Set(now),
            summary: Set(String::new()),
            node: Set(Some(crate::fleet::cluster::this_node())),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        for id in ids {
            provision_item::ActiveModel {
                task_id: Set(task.id),
                device_id: Set(*id),
                status: Set("pending".into()),
                step: Set(String::new()),
                detail: Set(json!([])),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
        }
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "provision.apply",
                target_kind: "profile",
                target_id: profile_id.to_string(),
                before: None,
                after: Some(json!({"task": task.id, "profile": profile.name, "devices": ids})),
            },
        )
        .await?;
        // Registered now, so a page that follows the task sees it queued
        // rather than finished.
        self.progress.begin(
            task.id,
            Progress {
                phase: "queued".into(),
                total: ids.len() as u64,
                ..Default::default()
            },
        );
        Ok(task.id)
    }

    /// Work a task's pending devices, `concurrency` at a time.
    pub async fn run(self: &Arc<Self>, task_id: i32) -> Result<()> {
        use futures::StreamExt;
        let task = provision_task::Entity::find_by_id(task_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no task {task_id}")))?;
        // The spec as it was when the task was made (older tasks: the
        // profile's present one).
        let spec = match &task.spec {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("task {task_id}'s profile is unreadable: {e}"),
                )
            })?,
            None => Self::spec_of(&self.profile(task.profile_id).await?)?,
        };
        let items = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .filter(provision_item::Column::Status.eq("pending"))
            .all(&self.db)
            .await?;
        let total = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .all(&self.db)
            .await?
            .len();
        let reporter = self.progress.begin(
            task_id,
            Progress {
                phase: "applying".into(),
                total: total as u64,
                done: (total - items.len()) as u64,
                ..Default::default()
            },
        );
        let ids: Vec<i32> = items.iter().map(|i| i.device_id).collect();
        let targets = self.targets(&ids).await?;
        let results = futures::stream::iter(items.into_iter().map(|item| {
            let t = targets
                .iter()
                .find(|t| t.device.id == item.device_id)
                .cloned();
            let spec = &spec;
            let reporter = reporter.clone();
            async move {
                self.run_item(item, t, spec, task.profile_id, &reporter)
                    .await
            }
        }))
        .buffer_unordered(self.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        for r in results {
            r?;
        }
        self.finish_task(task_id, &reporter).await
    }

    pub(super) async fn run_item(
        &self,
        item: provision_item::Model,
        target: Option<Target>,
        spec: &ProfileSpec,
        profile_id: i32,
        reporter: &Reporter,
    ) -> Result<()> {
        let now = self.clock.now_utc();
        let mut am = item.clone().into_active_model();
        am.status = Set("running".into());
        am.updated_at = Set(now);
        am.update(&self.db).await?;
        let applied = match &target {
            Some(t) => {
                let name = t.device.name.clone();
                let step = |s: &str| {
                    reporter.update(|p| p.message = format!("{name}: {s}"));
                };
                self.apply_one(t, spec, &step).await
            }
            None => Applied {
                status: "failed",
                step: "load".into(),
                results: vec![],
                new_password: None,
            },
        };
        let mut am = item.into_active_model();
        am.status = Set(applied.status.into());
        am.step = Set(applied.step.clone());
        am.detail = Set(serde_json::to_value(&applied.results).unwrap_or(json!([])));
        am.secret = Set(applied
            .new_password
            .as_deref()
            .map(|p| self.secrets.seal_str(p)));
        am.updated_at = Set(self.clock.now_utc());
        am.update(&self.db).await?;
        if let Some(t) = &target
            && applied.status != "failed"
        {
            device::Entity::update_many()
                .col_expr(
                    device::Column::ProfileId,
                    sea_orm::sea_query::Expr::value(profile_id),
                )
                .col_expr(
                    device::Column::ConfigDrift,
                    sea_orm::sea_query::Expr::value(if applied.status == "partial" {
                        format!("partly applied; failed at {}", applied.step)
                    } else {
                        String::new()
                    }),
                )
                .filter(device::Column::Id.eq(t.device.id))
                .exec(&self.db)
                .await?;
            // Encoder changes show in the stored profiles at the next re-adoption;
            // keep the copy in step now.
            if applied
                .results
                .iter()
                .any(|r| r.key.starts_with("encoder:") && r.result == "changed")
            {
                self.refresh_profiles(t).await;
            }
        }
        reporter.update(|p| {
            p.done += 1;
            if applied.status == "failed" || applied.status == "partial" {
                p.found += 1; // failures, shown as such
            }
        });
        Ok(())
    }

    pub(super) async fn refresh_profiles(&self, t: &Target) {
        let Ok(d) = self.session_of(t) else {
            return;
        };
        let media = media_of(&t.device);
        if let Ok(profiles) = crate::onvif::media::get_profiles(&d, media).await {
            for p in profiles {
                if let Some(e) = p.encoder {
                    let _ = device_profile::Entity::update_many()
                        .col_expr(
                            device_profile::Column::Width,
                            sea_orm::sea_query::Expr::value(e.width.map(|v| v as i32)),
                        )
                        .col_expr(
                            device_profile::Column::Height,
                            sea_orm::sea_query::Expr::value(e.height.map(|v| v as i32)),
                        )
                        .col_expr(
                            device_profile::Column::FrameRate,
                            sea_orm::sea_query::Expr::value(e.frame_rate_limit.map(f64::from)),
                        )
                        .col_expr(
                            device_profile::Column::BitrateKbps,
                            sea_orm::sea_query::Expr::value(e.bitrate_limit_kbps.map(|v| v as i32)),
                        )
                        .filter(device_profile::Column::DeviceId.eq(t.device.id))
                        .filter(device_profile::Column::Token.eq(p.token))
                        .exec(&self.db)
                        .await;
                }
            }
        }
    }

    pub(super) async fn finish_task(&self, task_id: i32, reporter: &Reporter) -> Result<()> {
        let items = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .all(&self.db)
            .await?;
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for i in &items {
            *counts.entry(i.status.clone()).or_default() += 1;
        }
        let summary = counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(t) = provision_task::Entity::find_by_id(task_id)
            .one(&self.db)
            .await?
        {
            let mut am = t.into_active_model();
            am.status = Set("done".into());
            am.finished_at = Set(Some(self.clock.now_utc()));
            am.summary = Set(summary.clone());
            am.update(&self.db).await?;
        }
        reporter.finish("done", summary);
        Ok(())
    }

    /// Tasks left `running` by a node that is gone are interrupted; those
    /// of the nodes in `alive` are left alone.
    pub async fn recover(&self, alive: &[String]) -> Result<usize> {
        let running = provision_task::Entity::find()
            .filter(provision_task::Column::Status.eq("running"))
            .filter(
                sea_orm::Condition::any()
                    .add(provision_task::Column::Node.is_null())
                    .add(provision_task::Column::Node.is_not_in(alive.iter().cloned())),
            )
            .all(&self.db)
            .await?;
        let n = running.len();
        for t in running {
            provision_item::Entity::update_many()
                .col_expr(
                    provision_item::Column::Status,
                    sea_orm::sea_query::Expr::value("interrupted"),
                )
                .filter(provision_item::Column::TaskId.eq(t.id))
                .filter(provision_item::Column::Status.is_in(["pending", "running"]))
                .exec(&self.db)
                .await?;
            let mut am = t.into_active_model();
            am.status = Set("interrupted".into());
            am.update(&self.db).await?;
        }
        Ok(n)
    }

    /// The distinct sites of these devices.
    pub async fn sites_of_devices(&self, ids: &[i32]) -> Result<Vec<Option<i32>>> {
        use sea_orm::QuerySelect;
        Ok(device::Entity::find()
            .filter(device::Column::Id.is_in(ids.iter().copied()))
            .select_only()
            .column(device::Column::SiteId)
            .distinct()
            .into_tuple::<Option<i32>>()
            .all(&self.db)
            .await?)
    }

    /// The sites of every device in a task.
    pub async fn task_sites(&self, task_id: i32) -> Result<Vec<Option<i32>>> {
        use sea_orm::QuerySelect;
        let ids: Vec<i32> = provision_item::Entity::find()
            .filter(provision_item::Column::TaskId.eq(task_id))
            .select_only()
            .column(provision_item::Column::DeviceId)
            .into_tuple()
            .all(&self.db)
            .await?;
        self.sites_of_devices(&ids).await
    }

    /// Make an interrupted task's unfinished devices pending again: for
    /// those whose sites cover every device of the task.
    pub async fn resume(&self, task_id: i32, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        let t = provision_task::Entity::find_by_id(task_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no task {task_id}")))?;
        if !actor.scope.covers(self.task_sites(task_id).await?) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "this task includes devices outside the sites you manage",
            ));
        }
        if t.status != "interrupted" {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("task {task_id} is {}, not interrupted", t.status),
            ));
        }
        provision_item::Entity::update_many()
            .col_expr(
                provision_item::Column::Status,
                sea_orm::sea_query::Expr::value("pending"),
            )
            .filter(provision_item::Column::TaskId.eq(task_id))
            .filter(provision_item::Column::Status.eq("interrupted"))
            .exec(&self.db)
            .await?;
        let now = self.clock.now_utc();
        let mut am = t.into_active_model();
        am.status = Set("running".into());
        am.update(&self.db).await?;
        self.progress.begin(
            task_id,
            Progress {
                phase: "queued".into(),
                ..Default::default()
            },
        );
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "provision.resume",
                target_kind: "task",
                target_id: task_id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Reveal a rotated password once; later calls get None.
    pub async fn reveal_password(&self, item_id: i32, actor: &Actor) -> Result<Option<String>> {
        actor.require(crate::fleet::users::Role::can_operate_devices)?;
        let Some(item) = provision_item::Entity::find_by_id(item_id)
            .one(&self.db)
            .await?
        else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no item {item_id}"),
            ));
        };
        let site = device::Entity::find_by_id(item.device_id)
            .one(&self.db)
            .await?
            .map(|d| d.site_id);
        if !site.is_some_and(|s| actor.scope.allows_site(s)) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no item {item_id}"),
            ));
        }
        let Some(sealed) = item.secret.clone() else {
            return Ok(None);
        };
        let pw = self
            .secrets
            .open_string(&sealed)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("sealed password: {e}")))?;
        let device_id = item.device_id;
        let mut am = item.into_active_model();
        am.secret = Set(None);
        am.update(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "provision.password_shown",
                target_kind: "device",
                target_id: device_id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        Ok(Some(pw))
    }
}
