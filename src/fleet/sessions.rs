//! Login sessions: a random 32-byte token in an HttpOnly cookie; the database
//! keeps only its SHA-256. Each session carries its own CSRF token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rand::Rng;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sha2::Digest;

use crate::clock::SharedClock;
use crate::db::entities::session;
use crate::error::Result;

/// Sessions end after this long without being renewed by a login.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// …and after this long without a request (a workstation left logged in).
pub const IDLE_TIMEOUT_SECS: i64 = 30 * 60;
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionData {
    pub user_id: i32,
    pub csrf: String,
}

pub struct Sessions {
    db: DatabaseConnection,
    clock: SharedClock,
}

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    B64URL.encode(b)
}

/// Lowercase hex SHA-256: how session and API tokens are stored.
pub(crate) fn key(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sessions {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    /// Start a session; returns the cookie token (shown to nobody else).
    pub async fn create(&self, user_id: i32) -> Result<(String, SessionData)> {
        let token = random_token();
        let data = SessionData {
            user_id,
            csrf: random_token(),
        };
        session::ActiveModel {
            id: Set(key(&token)),
            data: Set(serde_json::to_vec(&data).unwrap_or_default()),
            user_id: Set(Some(user_id)),
            expires_at: Set(self.clock.now_utc() + chrono::Duration::seconds(SESSION_TTL_SECS)),
            last_seen_at: Set(Some(self.clock.now_utc())),
        }
        .insert(&self.db)
        .await?;
        Ok((token, data))
    }

    /// The live session for a cookie token, if any.
    pub async fn get(&self, token: &str) -> Result<Option<SessionData>> {
        let Some(s) = session::Entity::find_by_id(key(token))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let now = self.clock.now_utc();
        let idle = s
            .last_seen_at
            .is_some_and(|t| now - t > chrono::Duration::seconds(IDLE_TIMEOUT_SECS));
        if s.expires_at <= now || idle {
            session::Entity::delete_by_id(s.id).exec(&self.db).await?;
            return Ok(None);
        }
        if s.last_seen_at
            .is_none_or(|t| now - t > chrono::Duration::seconds(TOUCH_EVERY_SECS))
        {
            session::Entity::update_many()
                .col_expr(
                    session::Column::LastSeenAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(session::Column::Id.eq(s.id.clone()))
                .exec(&self.db)
                .await?;
        }
        Ok(serde_json::from_slice(&s.data).ok())
    }

    pub async fn delete(&self, token: &str) -> Result<()> {
        session::Entity::delete_by_id(key(token))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn purge_expired(&self) -> Result<u64> {
        let r = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(self.clock.now_utc()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }
}
