//! API tokens for scripts: `Authorization: Bearer cf_…`. The token is
//! random (256 bits), shown once; the database keeps only its SHA-256, so
//! a leaked database hands out no access. A token acts as its user, with
//! that user's role and sites, and stops working when the user is disabled.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;

use super::audit::{self, Actor, Entry};
use super::sessions::{key, random_token};
use crate::clock::SharedClock;
use crate::db::entities::api_token;
use crate::error::{Error, ErrorKind, Result};

pub const PREFIX: &str = "cf_";

pub struct ApiTokens {
    db: DatabaseConnection,
    clock: SharedClock,
}

impl ApiTokens {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    /// Make a token; the returned string is the only copy.
    pub async fn create(
        &self,
        user_id: i32,
        name: &str,
        valid_days: Option<u32>,
        actor: &Actor,
    ) -> Result<(String, api_token::Model)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "name: 1–100 characters, e.g. what the script is for",
            ));
        }
        if valid_days.is_some_and(|d| d == 0 || d > 3650) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "valid for: 1–3650 days, or empty for no expiry",
            ));
        }
        let token = format!("{PREFIX}{}", random_token());
        let now = self.clock.now_utc();
        let t = api_token::ActiveModel {
            user_id: Set(user_id),
            name: Set(name.into()),
            token_hash: Set(key(&token)),
            created_at: Set(now),
            last_used_at: Set(None),
            expires_at: Set(valid_days.map(|d| now + chrono::Duration::days(i64::from(d)))),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        audit::record(
            &self.db,
            actor,
            now,
            Entry {
                action: "token.create",
                target_kind: "user",
                target_id: user_id.to_string(),
                before: None,
                after: Some(json!({"token_id": t.id, "name": t.name, "expires_at": t.expires_at})),
            },
        )
        .await?;
        Ok((token, t))
    }

    pub async fn of_user(&self, user_id: i32) -> Result<Vec<api_token::Model>> {
        Ok(api_token::Entity::find()
            .filter(api_token::Column::UserId.eq(user_id))
            .order_by_desc(api_token::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Revoke one of a user's tokens (admins may revoke anyone's: pass None).
    pub async fn revoke(&self, id: i32, owner: Option<i32>, actor: &Actor) -> Result<()> {
        let t = api_token::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|t| owner.is_none_or(|o| o == t.user_id))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no token {id}")))?;
        api_token::Entity::delete_by_id(id).exec(&self.db).await?;
        audit::record(
            &self.db,
            actor,
            self.clock.now_utc(),
            Entry {
                action: "token.revoke",
                target_kind: "user",
                target_id: t.user_id.to_string(),
                before: Some(json!({"token_id": t.id, "name": t.name})),
                after: None,
            },
        )
        .await
    }

    /// The user id a presented token belongs to, if it is live. Marks it
    /// used (at most once a minute, to keep reads cheap).
    pub async fn resolve(&self, token: &str) -> Result<Option<i32>> {
        if !token.starts_with(PREFIX) || token.len() > 200 {
            return Ok(None);
        }
        let Some(t) = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(key(token)))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let now = self.clock.now_utc();
        if t.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let user_id = t.user_id;
        if t.last_used_at
            .is_none_or(|u| now - u > chrono::Duration::seconds(60))
        {
            let mut am = t.into_active_model();
            am.last_used_at = Set(Some(now));
            am.update(&self.db).await?;
        }
        Ok(Some(user_id))
    }
}
