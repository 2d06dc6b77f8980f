//! Accounts: argon2id password hashes, four roles, login throttling with a
//! lockout after repeated failures. Every change goes to the audit log.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set, TransactionTrait,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use crate::clock::SharedClock;
use crate::db::entities::{site, user, user_site};
use crate::error::{Error, ErrorKind, Result};

/// Consecutive failures that lock an account.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_SECS: i64 = 15 * 60;
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
}

pub struct Users {
    db: DatabaseConnection,
    clock: SharedClock,
}

/// Why a login did not succeed. The user is told only "wrong user name or
/// password" or "locked"; the detail goes to the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    BadCredentials,
    Locked {
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
        Self { db, clock }
    }

    pub async fn create(
        &self,
        name: &str,
        password: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<user::Model> {
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
                after: Some(json!({"username": name, "role": role.as_str()})),
            },
        )
        .await?;
        Ok(u)
    }

    /// Set a new password (and unlock). Callers also end the user's sessions.
    pub async fn set_password(
        &self,
        name: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<user::Model> {
        validate_password(password)?;
        let u = user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no user {name:?}")))?;
        let id = u.id;
        let mut am = u.into_active_model();
        am.password_hash = Set(hash(password.into()).await?);
        am.failed_logins = Set(0);
        am.locked_until = Set(None);
        let u = am.update(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "user.password",
                target_kind: "user",
                target_id: id.to_string(),
                before: None,
                after: None,
            },
        )
        .await?;
        Ok(u)
    }

    pub async fn list(&self) -> Result<Vec<user::Model>> {
        use sea_orm::QueryOrder;
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.db)
            .await?)
    }

    /// The site ids a user is limited to (empty: all sites).
    pub async fn sites_of(&self, user_id: i32) -> Result<Vec<i32>> {
        Ok(user_site::Entity::find()
            .filter(user_site::Column::UserId.eq(user_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.site_id)
            .collect())
    }

    /// Change a user's role, enabled flag and sites, audited before → after.
    /// An admin cannot demote or disable themself (so there is always one
    /// admin who can undo a mistake). Callers end the user's sessions when
    /// the account is disabled and clear cached logins.
    pub async fn update(
        &self,
        id: i32,
        role: Role,
        disabled: bool,
        sites: &[i32],
        actor_user_id: i32,
        actor: &Actor,
    ) -> Result<user::Model> {
        let old = self
            .by_id(id)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no user {id}")))?;
        if id == actor_user_id && (role != Role::Admin || disabled) {
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
        let before = json!({"role": old.role, "disabled": old.disabled, "sites": had});
        let txn = self.db.begin().await?;
        let mut am = old.into_active_model();
        am.role = Set(role.as_str().into());
        am.disabled = Set(disabled);
        let u = am.update(&txn).await?;
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
        let after = json!({"role": role.as_str(), "disabled": disabled, "sites": want});
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

    pub async fn by_id(&self, id: i32) -> Result<Option<user::Model>> {
        Ok(user::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// Check a login. Failures are counted; the account locks for
    /// [`LOCKOUT_SECS`] after [`MAX_FAILED_LOGINS`] in a row.
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<std::result::Result<user::Model, LoginError>> {
        let now = self.clock.now_utc();
        let actor = Actor {
            name: name.chars().take(64).collect(),
            ip: ip.map(String::from),
        };
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(name))
            .one(&self.db)
            .await?;
        let Some(u) = found else {
            verify(password.into(), DUMMY_HASH.into()).await;
            self.audit_login(&actor, now, "login.failed", "", "unknown user")
                .await?;
            return Ok(Err(LoginError::BadCredentials));
        };
        if u.disabled {
            self.audit_login(&actor, now, "login.failed", &u.id.to_string(), "disabled")
                .await?;
            return Ok(Err(LoginError::Disabled));
        }
        if let Some(until) = u.locked_until.filter(|t| *t > now) {
            self.audit_login(&actor, now, "login.failed", &u.id.to_string(), "locked")
                .await?;
            return Ok(Err(LoginError::Locked { until }));
        }
        let ok = verify(password.into(), u.password_hash.clone()).await;
        let id = u.id;
        let failed = u.failed_logins;
        let mut am = u.into_active_model();
        if ok {
            am.failed_logins = Set(0);
            am.locked_until = Set(None);
            am.last_login_at = Set(Some(now));
            let u = am.update(&self.db).await?;
            self.audit_login(&actor, now, "login", &id.to_string(), "")
                .await?;
            return Ok(Ok(u));
        }
        let failed = failed + 1;
        am.failed_logins = Set(failed);
        let locked = failed >= MAX_FAILED_LOGINS;
        if locked {
            am.failed_logins = Set(0);
            am.locked_until = Set(Some(now + chrono::Duration::seconds(LOCKOUT_SECS)));
        }
        am.update(&self.db).await?;
        let reason = if locked {
            "wrong password; account locked"
        } else {
            "wrong password"
        };
        self.audit_login(&actor, now, "login.failed", &id.to_string(), reason)
            .await?;
        Ok(Err(if locked {
            LoginError::Locked {
                until: now + chrono::Duration::seconds(LOCKOUT_SECS),
            }
        } else {
            LoginError::BadCredentials
        }))
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
