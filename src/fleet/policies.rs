//! Per-device policies: what a camera turned out to need, kept on its row
//! so every worker acts on it after a restart instead of learning it
//! again (the way retina names its per-camera policies). Two things are
//! kept:
//! - the authentication mode (`devices.auth_mode`) found by the ladder in
//!   `onvif::session`;
//! - the durable quirks (`devices.quirks`): answers in SOAP 1.1, faults
//!   with an unusual status, a clock that needs credentials or comes from
//!   the HTTP `Date`, UTC derived from local time and a time zone, no
//!   GetServices, rewritten addresses, broken XML tolerated, broken
//!   relative subscription times. A measured clock skew changes with every
//!   poll and is shown from the drift column instead.
//!
//! Each worker seeds its session with the stored quirks (`device_session`),
//! and reports what the session ended with ([`learned`]); the poller and
//! the event watcher write changes back ([`remember`]). The device page
//! lists them and an operator can reset them ([`reset`] through the
//! console), after which the next session detects everything afresh.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::db::entities::device;
use crate::error::Result;
use crate::onvif::{AuthMode, DeviceSession, Quirk};

/// Whether a quirk describes the device rather than one moment of it.
pub fn durable(q: &Quirk) -> bool {
    !matches!(q, Quirk::ClockSkew { .. })
}

/// The stored quirks of a device (unreadable entries are skipped: a
/// policy that cannot be read is simply detected again).
pub fn stored(quirks: &serde_json::Value) -> Vec<Quirk> {
    quirks
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|q| serde_json::from_value::<Quirk>(q.clone()).ok())
                .filter(durable)
                .collect()
        })
        .unwrap_or_default()
}

/// What a session knows at its end that the device row may not: its auth
/// mode and its durable quirks, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub auth_mode: Option<AuthMode>,
    pub quirks: Vec<Quirk>,
}

pub fn learned(session: &DeviceSession) -> Learned {
    let mut quirks: Vec<Quirk> = session.quirks().into_iter().filter(durable).collect();
    quirks.sort();
    quirks.dedup();
    Learned {
        auth_mode: session.auth_mode(),
        quirks,
    }
}

/// What to write when a session learned something the row does not say
/// (`stored_auth`, `stored_quirks` as read with the row): the auth mode
/// to store (None: keep) and the quirk list. Quirks are added to what is
/// stored, never dropped here (one session that did not meet a quirk does
/// not prove it gone); an auth mode replaces the stored one. None when
/// nothing changed.
pub fn merge(
    stored_auth: Option<&str>,
    stored_quirks: &serde_json::Value,
    l: &Learned,
) -> Option<(Option<String>, serde_json::Value)> {
    let mut quirks = stored(stored_quirks);
    let before = quirks.len();
    for q in &l.quirks {
        if !quirks.contains(q) {
            quirks.push(q.clone());
        }
    }
    quirks.sort();
    let new_auth = l.auth_mode.map(AuthMode::as_str);
    let auth_changed = new_auth.is_some() && new_auth != stored_auth;
    // Also rewrite when the stored list held entries that are not durable
    // (a skew kept by an older release).
    let stored_len = stored_quirks.as_array().map_or(0, Vec::len);
    if !auth_changed && quirks.len() == before && stored_len == before {
        return None;
    }
    Some((
        if auth_changed {
            new_auth.map(str::to_string)
        } else {
            None
        },
        serde_json::to_value(&quirks).unwrap_or_default(),
    ))
}

/// [`merge`], written to the device row. Returns whether anything was.
pub async fn remember(
    db: &DatabaseConnection,
    device_id: i32,
    stored_auth: Option<&str>,
    stored_quirks: &serde_json::Value,
    l: &Learned,
) -> Result<bool> {
    let Some((auth, quirks)) = merge(stored_auth, stored_quirks, l) else {
        return Ok(false);
    };
    let mut update = device::Entity::update_many()
        .col_expr(
            device::Column::Quirks,
            sea_orm::sea_query::Expr::value(quirks),
        )
        .filter(device::Column::Id.eq(device_id));
    if let Some(a) = auth {
        update = update.col_expr(
            device::Column::AuthMode,
            sea_orm::sea_query::Expr::value(Some(a)),
        );
    }
    update.exec(db).await?;
    Ok(true)
}

/// A quirk as the device page shows it: what the camera does and what
/// camfleet does about it.
pub fn describe(q: &Quirk) -> String {
    match q {
        Quirk::Soap11Answers => {
            "answers in SOAP 1.1 although asked in 1.2 (read either way)".into()
        }
        Quirk::FaultStatus { status } => {
            format!("sends faults with HTTP {status} (classified by their content)")
        }
        Quirk::DateTimeNeedsAuth => {
            "its clock can only be read with credentials (anchored on the HTTP Date first)".into()
        }
        Quirk::ClockFromHttpDate => "the clock anchor came from the HTTP Date header".into(),
        Quirk::UtcFromLocalTime => {
            "reports no UTC time: derived from its local time and time zone".into()
        }
        Quirk::ClockSkew { offset_ms } => format!("clock off by {} ms", offset_ms),
        Quirk::AddressRewritten { field, reported } => {
            format!("reports {field} as {reported:?}: the reached host is used instead")
        }
        Quirk::NoGetServices => "no GetServices: GetCapabilities is used instead".into(),
        Quirk::XAddrFallback { used } => {
            format!("the first discovery address did not answer; {used} did")
        }
        Quirk::MalformedXmlTolerated => "sends broken XML that is read past".into(),
        Quirk::BrokenRelativeTime => {
            "mishandles relative subscription times: absolute times are sent".into()
        }
    }
}
