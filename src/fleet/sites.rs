//! Sites: the places cameras live. Users may be limited to sites; devices
//! belong to at most one. A site with devices cannot be deleted (move them
//! first), so nothing is orphaned silently.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use crate::clock::SharedClock;
use crate::db::entities::{device, site, user_site};
use crate::error::{Error, ErrorKind, Result};

/// Everything the sites page and API set on a site at once.
#[derive(Debug, Clone, Copy)]
pub struct SiteConfig<'a> {
    pub name: &'a str,
    pub description: &'a str,
    /// None: the default.
    pub poll_interval_s: Option<i32>,
    /// None: every configured discovery interface.
    pub interface: Option<std::net::Ipv4Addr>,
    /// An IANA name; None: unchanged; empty: UTC.
    pub time_zone: Option<&'a str>,
}

pub struct Sites {
    db: DatabaseConnection,
    clock: SharedClock,
    /// The list, read on nearly every page: cached until a site changes
    /// here, and at most [`LIST_TTL`] (changes made by other nodes).
    cache: std::sync::Mutex<Option<(std::time::Duration, Vec<site::Model>)>>,
}

pub const LIST_TTL: std::time::Duration = std::time::Duration::from_secs(10);

pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "name: 1–100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "name: no control characters",
        ));
    }
    Ok(name.to_string())
}

impl Sites {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self {
            db,
            clock,
            cache: Default::default(),
        }
    }

    /// Every site, by name.
    pub async fn list(&self) -> Result<Vec<site::Model>> {
        let now = self.clock.monotonic();
        if let Some((at, sites)) = &*self.cache.lock().unwrap_or_else(|e| e.into_inner())
            && now.saturating_sub(*at) < LIST_TTL
        {
            return Ok(sites.clone());
        }
        let sites = site::Entity::find()
            .order_by_asc(site::Column::Name)
            .all(&self.db)
            .await?;
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, sites.clone()));
        Ok(sites)
    }

    fn changed(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub async fn by_name(&self, name: &str) -> Result<Option<site::Model>> {
        Ok(site::Entity::find()
            .filter(site::Column::Name.eq(name.trim()))
            .one(&self.db)
            .await?)
    }

    pub async fn create(
        &self,
        name: &str,
        description: &str,
        actor: &Actor,
    ) -> Result<site::Model> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let name = validate_name(name)?;
        if self.by_name(&name).await?.is_some() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("name: a site named {name:?} exists"),
            ));
        }
        let now = self.clock.now_utc();
        let s = site::ActiveModel {
            name: Set(name.clone()),
            description: Set(description.trim().chars().take(1000).collect()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        self.changed();
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "site.create",
                target_kind: "site",
                target_id: s.id.to_string(),
                before: None,
                after: Some(json!({"name": s.name, "description": s.description})),
            },
        )
        .await?;
        Ok(s)
    }

    pub async fn update(
        &self,
        id: i32,
        name: &str,
        description: &str,
        actor: &Actor,
    ) -> Result<site::Model> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let name = validate_name(name)?;
        let old = site::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no site {id}")))?;
        if let Some(other) = self.by_name(&name).await?
            && other.id != id
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("name: a site named {name:?} exists"),
            ));
        }
        let before = json!({"name": old.name, "description": old.description});
        let mut am = old.into_active_model();
        am.name = Set(name);
        am.description = Set(description.trim().chars().take(1000).collect());
        let s = am.update(&self.db).await?;
        self.changed();
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "site.update",
                target_kind: "site",
                target_id: id.to_string(),
                before: Some(before),
                after: Some(json!({"name": s.name, "description": s.description})),
            },
        )
        .await?;
        Ok(s)
    }

    /// Name, description, poll interval and discovery interface at once,
    /// every value checked before anything is written (the interface is
    /// checked by the caller against this host's configured ones).
    pub async fn configure(
        &self,
        id: i32,
        c: &SiteConfig<'_>,
        actor: &Actor,
    ) -> Result<site::Model> {
        let SiteConfig {
            name,
            description,
            poll_interval_s,
            interface,
            time_zone,
        } = *c;
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        validate_name(name)?;
        if poll_interval_s.is_some_and(|s| !(10..=86_400).contains(&s)) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "poll interval: 10–86400 seconds, or empty for the default",
            ));
        }
        if let Some(tz) = time_zone.map(str::trim).filter(|t| !t.is_empty()) {
            crate::fleet::jobs::parse_tz(tz)
                .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("time zone: {e}")))?;
        }
        self.update(id, name, description, actor).await?;
        self.set_poll_interval(id, poll_interval_s, actor).await?;
        if let Some(tz) = time_zone {
            self.set_time_zone(id, tz, actor).await?;
        }
        self.set_discovery_interface(id, interface, actor).await?;
        self.get(id).await
    }

    /// The poll interval of the site's devices (None: the default).
    pub async fn set_poll_interval(&self, id: i32, secs: Option<i32>, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        if secs.is_some_and(|s| !(10..=86_400).contains(&s)) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "poll interval: 10–86400 seconds, or empty for the default",
            ));
        }
        self.set_setting(
            id,
            actor,
            "site.poll_interval",
            "poll_interval_s",
            |m| json!(m.poll_interval_s),
            |am| am.poll_interval_s = Set(secs),
            json!(secs),
        )
        .await
    }

    /// The site's time zone, an IANA name (`Europe/Berlin`); empty: UTC.
    pub async fn set_time_zone(&self, id: i32, name: &str, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let name = name.trim();
        let tz = if name.is_empty() {
            "UTC".to_string()
        } else {
            crate::fleet::jobs::parse_tz(name)
                .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("time zone: {e}")))?
                .name()
                .to_string()
        };
        self.set_setting(
            id,
            actor,
            "site.time_zone",
            "time_zone",
            |m| json!(m.time_zone),
            |am| am.time_zone = Set(tz.clone()),
            json!(tz),
        )
        .await
    }

    /// The discovery interface (an address of this host) the site's
    /// multicast discoveries use by default; None: every configured one.
    pub async fn set_discovery_interface(
        &self,
        id: i32,
        interface: Option<std::net::Ipv4Addr>,
        actor: &Actor,
    ) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let new = interface.map(|i| i.to_string());
        self.set_setting(
            id,
            actor,
            "site.discovery_interface",
            "discovery_interface",
            |m| json!(m.discovery_interface),
            |am| am.discovery_interface = Set(new.clone()),
            json!(new),
        )
        .await
    }

    /// Change one setting of a site: nothing when it already is `after`,
    /// else written and audited as `action` with `key`'s before and after.
    #[allow(clippy::too_many_arguments)]
    async fn set_setting(
        &self,
        id: i32,
        actor: &Actor,
        action: &str,
        key: &str,
        current: impl Fn(&site::Model) -> serde_json::Value,
        apply: impl FnOnce(&mut site::ActiveModel),
        after: serde_json::Value,
    ) -> Result<()> {
        let old = self.get(id).await?;
        let before = current(&old);
        if before == after {
            return Ok(());
        }
        let mut am = old.into_active_model();
        apply(&mut am);
        am.update(&self.db).await?;
        self.changed();
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action,
                target_kind: "site",
                target_id: id.to_string(),
                before: Some(json!({ key: before })),
                after: Some(json!({ key: after })),
            },
        )
        .await
    }

    /// The sites a scope may see, by name.
    pub async fn visible(&self, scope: &crate::fleet::access::Scope) -> Result<Vec<site::Model>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|s| scope.allows_site(Some(s.id)))
            .collect())
    }

    /// One site.
    pub async fn get(&self, id: i32) -> Result<site::Model> {
        site::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no site {id}")))
    }

    /// Delete an empty site (and the memberships naming it).
    pub async fn delete(&self, id: i32, actor: &Actor) -> Result<()> {
        actor.require(crate::fleet::users::Role::can_manage_users)?;
        let s = site::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no site {id}")))?;
        let n = device::Entity::find()
            .filter(device::Column::SiteId.eq(id))
            .count(&self.db)
            .await?;
        if n > 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("site {:?} still has {n} devices; move them first", s.name),
            ));
        }
        let members = user_site::Entity::find()
            .filter(user_site::Column::SiteId.eq(id))
            .count(&self.db)
            .await?;
        if members > 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "site {:?} is still assigned to {members} user(s); take it off their accounts first",
                    s.name
                ),
            ));
        }
        site::Entity::delete_by_id(id).exec(&self.db).await?;
        self.changed();
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "site.delete",
                target_kind: "site",
                target_id: id.to_string(),
                before: Some(json!({"name": s.name})),
                after: None,
            },
        )
        .await
    }

    /// Device counts per site id (None = no site).
    pub async fn device_counts(&self) -> Result<Vec<(Option<i32>, i64)>> {
        use sea_orm::QuerySelect;
        Ok(device::Entity::find()
            .select_only()
            .column(device::Column::SiteId)
            .column_as(device::Column::Id.count(), "n")
            .group_by(device::Column::SiteId)
            .into_tuple()
            .all(&self.db)
            .await?)
    }
}
