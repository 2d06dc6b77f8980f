//! Accounts: argon2id password hashes, four roles, site access (an explicit
//! all-sites grant, or a list of sites), login throttling
//! ([`super::throttle`]), forced password changes. Every change goes to the
//! audit log, and only an admin (or the local operator) changes accounts.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set, TransactionTrait,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::throttle::{Claim, Keys, LoginThrottle};
use crate::clock::SharedClock;
use crate::db::entities::{api_token, session, site, user, user_site};
use crate::error::{Error, ErrorKind, Result};

pub const MIN_PASSWORD_LEN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and sites.
    Admin,
    /// Devices, discovery, adoption and device actions.
    Technician,
    /// Reads devices; edits inventory fields; CSV import and export.
    Procurement,
    /// Reads.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Technician,
        Role::Procurement,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Technician => "technician",
            Role::Procurement => "procurement",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn can_manage_users(self) -> bool {
        self == Role::Admin
    }
    pub fn can_operate_devices(self) -> bool {
        matches!(self, Role::Admin | Role::Technician)
    }
    pub fn can_edit_inventory(self) -> bool {
        matches!(self, Role::Admin | Role::Technician | Role::Procurement)
    }
    /// Watch live and recorded video, download and export it. Procurement
    /// manages the inventory and has no need to see what cameras see.
    pub fn can_watch_video(self) -> bool {
        matches!(self, Role::Admin | Role::Technician | Role::Viewer)
    }
    /// Acknowledge and resolve alerts.
    pub fn can_handle_alerts(self) -> bool {
        matches!(self, Role::Admin | Role::Technician)
    }

    /// What the role may do, for the users page.
    pub fn permissions(self) -> Vec<&'static str> {
        let mut p = vec!["see devices, alerts and recordings lists in their sites"];
        if self.can_edit_inventory() {
            p.push("edit inventory fields, import and export CSV");
        }
        if self.can_watch_video() {
            p.push("watch and download video");
        }
        if self.can_operate_devices() {
            p.push("discover, adopt, provision, reboot, update firmware, run jobs");
        }
        if self.can_handle_alerts() {
            p.push("acknowledge and resolve alerts");
        }
        if self.can_manage_users() {
            p.push("users, sites, alert channels and rules, shared profiles, metrics, audit log");
        }
        p
    }
}

/// What a new account gets besides its name, password and role.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub all_sites: bool,
    pub sites: Vec<i32>,
    /// The password was generated or typed by an admin: change at first login.
    pub must_change_password: bool,
}

/// A user's role and site access, as an admin sets them.
#[derive(Debug, Clone)]
pub struct Access {
    pub role: Role,
    pub disabled: bool,
    pub all_sites: bool,
    pub sites: Vec<i32>,
}

pub struct Users {
    db: DatabaseConnection,
    clock: SharedClock,
    throttle: LoginThrottle,
}

/// Why a login did not succeed. The user is told the same for all three
/// (and waits as long for each); the detail goes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    BadCredentials,
    /// Too many failures for this account or client address.
    Throttled {
        until: chrono::DateTime<chrono::Utc>,
    },
    Disabled,
}

/// A fixed hash verified when the user does not exist, so a missing user
/// name costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2lTfkVxUoLB1U0F8z3FJ8k8xXk6Q7Wv7Q0fAqg9bZ5E";

async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::new(ErrorKind::Internal, format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal, format!("hashing task: {e}")))?
}

async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), stored.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

pub fn validate_username(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            "user name: 1–64 characters of letters, digits and . _ - @",
        ))
    }
}

pub fn validate_password(pw: &str) -> Result<()> {
    if pw.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("password: at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

impl Users {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self {
            throttle: LoginThrottle::new(db.clone()),
            db,
            clock,
        }
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// A new account with no sites (it sees nothing until given some).
    pub async fn create(
        &self,
        name: &str,
        password: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<user::Model> {
        self.create_with(name, password, role, NewUser::default(), actor)
            .await
    }

    pub async fn create_with(
        &self,
        name: &str,
        password: &str,
        role: Role,
        opts: NewUser,
        actor: &Actor,
    ) -> Result<user::Model> {
        actor.require(Role::can_manage_users)?;
        if opts.all_sites && !actor.is_admin() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "only an admin grants all sites",
            ));
        }
        validate_username(name)?;
        validate_password(password)?;
        if user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("user name {name:?} is taken"),
            ));
        }
        let now = self.clock.now_utc();
        let u = user::ActiveModel {
            username: Set(name.into()),
            password_hash: Set(hash(password.into()).await?),
            role: Set(role.as_str().into()),
            disabled: Set(false),
            failed_logins: Set(0),
            created_at: Set(now),
            all_sites: Set(opts.all_sites),
            must_change_password: Set(opts.must_change_password),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "user.create",
                target_kind: "user",
                target_id: u.id.to_string(),
                before: None,
                after: Some(json!({"username": name, "role": role.as_str(),
                    "all_sites": opts.all_sites,
                    "must_change_password": opts.must_change_password})),
            },
        )
        .await?;
        if !opts.sites.is_empty() {
            let access = Access {
                role,
                disabled: false,
                all_sites: opts.all_sites,
                sites: opts.sites,
            };
            return self.update(u.id, access, actor).await;
        }
        Ok(u)
    }

    /// An admin sets a user's password: every session and API token of
    /// that user stops working, the login counters are cleared, and
    /// `must_change` makes the next login choose a new one.
    pub async fn set_password(
        &self,
        name: &str,
        password: &str,
        must_change: bool,
        actor: &Actor,
    ) -> Result<user::Model> {
        actor.require(Role::can_manage_users)?;
        validate_password(password)?;
        let u = user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no user {name:?}")))?;
        let id = u.id;
        let hashed = hash(password.into()).await?;
        let txn = self.db.begin().await?;
        let mut am = u.into_active_model();
        am.password_hash = Set(hashed);
        am.must_change_password = Set(must_change);
        let u = am.update(&txn).await?;
        let sessions = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected;
        let tokens = api_token::Entity::delete_many()
            .filter(api_token::Column::UserId.eq(id))
            .exec(&txn)
            .await?
            .rows_affected;
        audit::record(
            &txn,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "user.password",
                target_kind: "user",
                target_id: id.to_string(),
                before: None,
                after: Some(json!({"must_change_password": must_change,
                    "sessions_ended": sessions, "tokens_revoked": tokens})),
            },
        )
        .await?;
        txn.commit().await?;
        self.throttle.forget_account(name).await?;
        Ok(u)
    }

    /// A user changes their own password: the current one must be right
    /// and the new one different. Their other sessions end; their API
    /// tokens keep working (scripts are not logins).
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        current_session: Option<&str>,
        current: &str,
        new: &str,
    ) -> Result<()> {
        let id = actor.user_id.ok_or_else(|| {
            Error::new(
                ErrorKind::PermissionDenied,
                "only a logged-in user has a password here",
            )
        })?;
        let u = self
            .by_id(id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such user"))?;
        if !verify(current.into(), u.password_hash.clone()).await {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "current password: that is not your current password",
            ));
        }
        validate_password(new).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                e.message.replacen("password", "new password", 1),
            )
        })?;
        if new == current {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "new password: choose a password different from the current one",
            ));
        }
        let hashed = hash(new.into()).await?;
        let txn = self.db.begin().await?;
        let mut am = u.into_active_model();
        am.password_hash = Set(hashed);
        am.must_change_password = Set(false);
        am.update(&txn).await?;
        let mut others = session::Entity::delete_many().filter(session::Column::UserId.eq(id));
        if let Some(keep) = current_session {
            others = others.filter(session::Column::Id.ne(super::sessions::key(keep)));
        }
        others.exec(&txn).await?;
        audit::record(
            &txn,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "user.password.self",
                target_kind: "user",
                target_id: id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<user::Model>> {
        use sea_orm::QueryOrder;
        actor.require(Role::can_manage_users)?;
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.db)
            .await?)
    }

    /// The sites a user is a member of (see also `all_sites`).
    pub async fn sites_of(&self, user_id: i32) -> Result<Vec<i32>> {
        Ok(user_site::Entity::find()
            .filter(user_site::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.site_id)
            .collect())
    }

    /// Change a user's role, enabled flag and site access, audited before →
    /// after. An admin cannot demote or disable themself (so there is always
    /// one admin who can undo a mistake). Disabling ends the user's
    /// sessions; callers clear cached logins.
    pub async fn update(&self, id: i32, access: Access, actor: &Actor) -> Result<user::Model> {
        actor.require(Role::can_manage_users)?;
        let Access {
            role,
            disabled,
            all_sites,
            sites,
        } = access;
        let sites = &sites[..];
        let old = self
            .by_id(id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no user {id}")))?;
        if actor.user_id == Some(id) && (role != Role::Admin || disabled) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "role: you cannot demote or disable your own account",
            ));
        }
        let mut want: Vec<i32> = sites.to_vec();
        want.sort_unstable();
        want.dedup();
        let known: Vec<i32> = site::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        if let Some(bad) = want.iter().find(|s| !known.contains(s)) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("sites: no site {bad}"),
            ));
        }
        let mut had = self.sites_of(id).await?;
        had.sort_unstable();
        let before = json!({"role": old.role, "disabled": old.disabled,
            "all_sites": old.all_sites, "sites": had});
        let txn = self.db.begin().await?;
        let mut am = old.into_active_model();
        am.role = Set(role.as_str().into());
        am.disabled = Set(disabled);
        am.all_sites = Set(all_sites);
        let u = am.update(&txn).await?;
        if disabled {
            session::Entity::delete_many()
                .filter(session::Column::UserId.eq(id))
                .exec(&txn)
                .await?;
        }
        user_site::Entity::delete_many()
            .filter(user_site::Column::UserId.eq(id))
            .exec(&txn)
            .await?;
        for s in &want {
            user_site::ActiveModel {
                user_id: Set(id),
                site_id: Set(*s),
            }
            .insert(&txn)
            .await?;
        }
        let after = json!({"role": role.as_str(), "disabled": disabled,
            "all_sites": all_sites, "sites": want});
        if before != after {
            audit::record(
                &txn,
                actor,
                self.clock.now_utc(),
                Entry {
                    action: "user.update",
                    target_kind: "user",
                    target_id: id.to_string(),
                    before: Some(before),
                    after: Some(after),
                },
            )
            .await?;
        }
        txn.commit().await?;
        Ok(u)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub async fn count(&self) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(user::Entity::find().count(&self.db).await?)
    }

    /// One user (admins).
    pub async fn get_for(&self, actor: &Actor, id: i32) -> Result<user::Model> {
        actor.require(Role::can_manage_users)?;
        self.by_id(id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no user {id}")))
    }

    pub async fn by_id(&self, id: i32) -> Result<Option<user::Model>> {
        Ok(user::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// Check a login. Each attempt first claims a slot on the account's
    /// and the client address's throttle counters ([`super::throttle`]);
    /// while either is blocked, no password is checked. An unknown, a
    /// disabled and a throttled account each cost one argon2 verification,
    /// like a wrong password, and the caller shows all of them the same.
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<std::result::Result<user::Model, LoginError>> {
        let now = self.clock.now_utc();
        let mut actor = Actor::operator(&name.chars().take(64).collect::<String>());
        actor.ip = ip.map(String::from);
        actor.role = Role::Viewer;
        actor.scope = super::access::Scope::none();
        let keys = Keys::new(name, ip.and_then(|i| i.parse().ok()));
        let claim = self.throttle.claim(&keys, now).await?;
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&self.db)
            .await?;
        let target = found.as_ref().map(|u| u.id.to_string()).unwrap_or_default();
        if let Claim::Blocked(until) = claim {
            verify(password.into(), DUMMY_HASH.into()).await;
            self.audit_login(&actor, now, "login.failed", &target, "throttled")
                .await?;
            return Ok(Err(LoginError::Throttled { until }));
        }
        let Some(u) = found else {
            verify(password.into(), DUMMY_HASH.into()).await;
            self.audit_login(&actor, now, "login.failed", "", "unknown user")
                .await?;
            return Ok(Err(LoginError::BadCredentials));
        };
        let ok = verify(password.into(), u.password_hash.clone()).await;
        if u.disabled {
            self.audit_login(&actor, now, "login.failed", &target, "disabled")
                .await?;
            return Ok(Err(LoginError::Disabled));
        }
        if !ok {
            self.audit_login(&actor, now, "login.failed", &target, "wrong password")
                .await?;
            return Ok(Err(LoginError::BadCredentials));
        }
        self.throttle.succeeded(&keys).await?;
        let mut am = u.into_active_model();
        am.last_login_at = Set(Some(now));
        let u = am.update(&self.db).await?;
        self.audit_login(&actor, now, "login", &target, "").await?;
        Ok(Ok(u))
    }

    async fn audit_login(
        &self,
        actor: &Actor,
        at: chrono::DateTime<chrono::Utc>,
        action: &str,
        id: &str,
        reason: &str,
    ) -> Result<()> {
        audit::record(
            &self.db,
            actor,
            at,
            Entry {
                action,
                target_kind: "user",
                target_id: id.into(),
                before: None,
                after: (!reason.is_empty()).then(|| json!({"reason": reason})),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        // If it did not parse, verifying against it would return at once and
        // a missing user name would answer faster than a wrong password.
        assert!(argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn roles_round_trip_and_grant_what_they_say() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(Role::Admin.can_manage_users() && !Role::Technician.can_manage_users());
        assert!(Role::Technician.can_operate_devices() && !Role::Procurement.can_operate_devices());
        assert!(Role::Procurement.can_edit_inventory() && !Role::Viewer.can_edit_inventory());
    }
}
