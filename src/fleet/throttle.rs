//! Login throttling that holds under parallel guessing.
//!
//! Every login attempt first *claims* a slot on two counters, the account
//! and the client address, by compare-and-swap on `login_throttle`
//! (`UPDATE … WHERE failures = <what we read>`), so 30 parallel guesses
//! take 30 distinct counter values and only the first few are ever
//! checked against the password hash. Once a counter passes its free
//! allowance, each further claim sets an exponentially growing block
//! (capped); while blocked, no password is checked at all, right or wrong.
//! A successful login clears the account counter and gives back its claim
//! on the address counter. Counters forget failures older than
//! [`FORGET_AFTER_SECS`].
//!
//! Logins from this host (a loopback client address, after the trusted
//! proxy chain) count on their own account counter, so a remote attacker
//! cannot lock the admin out of a local login.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::db::entities::login_throttle;
use crate::error::Result;

/// Failures an account may have before back-off starts.
pub const ACCOUNT_FREE: i32 = 5;
/// Failures one client address may have (over all accounts) before back-off.
pub const ADDRESS_FREE: i32 = 20;
/// The first block, doubled per further failure.
pub const BASE_BLOCK_SECS: i64 = 30;
/// The longest block.
pub const MAX_BLOCK_SECS: i64 = 15 * 60;
/// A counter whose last failure is older than this starts again from zero.
pub const FORGET_AFTER_SECS: i64 = 3600;

/// The counters a login attempt is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub account: String,
    pub address: Option<String>,
}

impl Keys {
    pub fn new(username: &str, ip: Option<IpAddr>) -> Self {
        let local = ip.is_none_or(|ip| ip.is_loopback());
        let account = account_key(username, local);
        let address = ip.filter(|ip| !ip.is_loopback()).map(|ip| match ip {
            IpAddr::V4(v4) => format!("ip:{v4}"),
            // One attacker usually holds a whole /64.
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        });
        Self { account, address }
    }
}

/// The account counter's key: logins from this host count apart.
fn account_key(username: &str, local: bool) -> String {
    let name: String = username.chars().take(64).collect();
    if local {
        format!("acct-local:{name}")
    } else {
        format!("acct:{name}")
    }
}

/// How long a counter at `failures` (after this claim) blocks further tries.
pub fn block_for(failures: i32, free: i32) -> Option<Duration> {
    if failures < free {
        return None;
    }
    let doublings = (failures - free).min(20) as u32;
    let secs = BASE_BLOCK_SECS.saturating_mul(1i64 << doublings);
    Some(Duration::seconds(secs.min(MAX_BLOCK_SECS)))
}

pub struct LoginThrottle {
    db: DatabaseConnection,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Go ahead and check the password.
    Granted,
    /// Blocked until then: do not check anything.
    Blocked(DateTime<Utc>),
}

impl LoginThrottle {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Claim one attempt on both counters. Blocked when either is.
    pub async fn claim(&self, keys: &Keys, now: DateTime<Utc>) -> Result<Claim> {
        if let Claim::Blocked(t) = self.claim_one(&keys.account, ACCOUNT_FREE, now).await? {
            return Ok(Claim::Blocked(t));
        }
        if let Some(a) = &keys.address
            && let Claim::Blocked(t) = self.claim_one(a, ADDRESS_FREE, now).await?
        {
            return Ok(Claim::Blocked(t));
        }
        Ok(Claim::Granted)
    }

    /// The password was right: the account starts afresh, and the address
    /// gets its claim back (a block it already has stays: one success
    /// does not clear a guessing address).
    pub async fn succeeded(&self, keys: &Keys) -> Result<()> {
        self.forget(&keys.account).await?;
        if let Some(a) = &keys.address {
            login_throttle::Entity::update_many()
                .col_expr(
                    login_throttle::Column::Failures,
                    sea_orm::sea_query::ExprTrait::sub(
                        Expr::col(login_throttle::Column::Failures),
                        1,
                    ),
                )
                .filter(login_throttle::Column::Key.eq(a.clone()))
                .filter(login_throttle::Column::Failures.gt(0))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Clear an account's counters (local and remote): its password was
    /// just set by an admin.
    pub async fn forget_account(&self, username: &str) -> Result<()> {
        for local in [false, true] {
            self.forget(&account_key(username, local)).await?;
        }
        Ok(())
    }

    async fn forget(&self, key: &str) -> Result<()> {
        login_throttle::Entity::delete_by_id(key.to_string())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    async fn claim_one(&self, key: &str, free: i32, now: DateTime<Utc>) -> Result<Claim> {
        login_throttle::Entity::insert(login_throttle::ActiveModel {
            key: Set(key.to_string()),
            failures: Set(0),
            blocked_until: Set(None),
            last_failure_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(login_throttle::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        // Compare-and-swap; a lost race reads again. Many lost races in a
        // row mean a flood: treat it as blocked rather than spin.
        for _ in 0..16 {
            let Some(row) = login_throttle::Entity::find_by_id(key.to_string())
                .one(&self.db)
                .await?
            else {
                continue;
            };
            if let Some(until) = row.blocked_until.filter(|t| *t > now) {
                return Ok(Claim::Blocked(until));
            }
            let stale = row
                .last_failure_at
                .is_none_or(|t| now - t > Duration::seconds(FORGET_AFTER_SECS));
            let base = if stale { 0 } else { row.failures };
            let failures = base + 1;
            let blocked = block_for(failures, free).map(|d| now + d);
            let r = login_throttle::Entity::update_many()
                .set(login_throttle::ActiveModel {
                    failures: Set(failures),
                    blocked_until: Set(blocked),
                    last_failure_at: Set(Some(now)),
                    ..Default::default()
                })
                .filter(login_throttle::Column::Key.eq(key))
                .filter(login_throttle::Column::Failures.eq(row.failures))
                .exec(&self.db)
                .await?;
            if r.rows_affected == 1 {
                return Ok(Claim::Granted);
            }
        }
        Ok(Claim::Blocked(now + Duration::seconds(BASE_BLOCK_SECS)))
    }

    /// Forget counters nobody has failed on for a while.
    pub async fn purge(&self, now: DateTime<Utc>) -> Result<u64> {
        let cutoff = now - Duration::seconds(FORGET_AFTER_SECS);
        let r = login_throttle::Entity::delete_many()
            .filter(login_throttle::Column::LastFailureAt.lt(cutoff))
            .filter(
                sea_orm::Condition::any()
                    .add(login_throttle::Column::BlockedUntil.is_null())
                    .add(login_throttle::Column::BlockedUntil.lt(now)),
            )
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_the_free_allowance_and_is_capped() {
        assert_eq!(block_for(4, 5), None);
        assert_eq!(block_for(5, 5), Some(Duration::seconds(30)));
        assert_eq!(block_for(6, 5), Some(Duration::seconds(60)));
        assert_eq!(block_for(9, 5), Some(Duration::seconds(480)));
        assert_eq!(block_for(10, 5), Some(Duration::seconds(MAX_BLOCK_SECS)));
        assert_eq!(block_for(500, 5), Some(Duration::seconds(MAX_BLOCK_SECS)));
    }

    #[test]
    fn local_logins_count_apart_and_v6_clients_by_their_64() {
        let remote = Keys::new("admin", Some("192.0.2.7".parse().unwrap()));
        let local = Keys::new("admin", Some("127.0.0.1".parse().unwrap()));
        assert_ne!(remote.account, local.account);
        assert_eq!(local.address, None);
        assert_eq!(remote.address.as_deref(), Some("ip:192.0.2.7"));
        let a = Keys::new("x", Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = Keys::new("x", Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        assert_eq!(a.address, b.address);
    }
}
