//! Notification channels, as protocol leaves (no database, no web): a
//! webhook (JSON POST signed with HMAC-SHA256) and email (SMTP via
//! lettre). Each `send` has a deadline and returns the exact error, which
//! the outbox shows and the "send test" button reports.

pub mod email;
pub mod snmp;
pub mod webhook;

/// What every channel sends: a subject, and the alert as JSON.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub payload: serde_json::Value,
    /// The outbox row, for idempotency on the receiving side.
    pub delivery_id: i64,
}
