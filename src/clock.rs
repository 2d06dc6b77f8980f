//! Injected time. Everything that asks "what time is it" (WS-Security `Created`,
//! camera clock offsets, timeouts that matter to logic, schedules) goes through
//! a [`Clock`], so tests move time by hand instead of sleeping.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock UTC.
    fn now_utc(&self) -> DateTime<Utc>;
    /// Monotonic time since an arbitrary fixed origin; never goes backwards.
    fn monotonic(&self) -> Duration;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to. Wall time can also be stepped on its
/// own (an NTP step) without moving monotonic time.
#[derive(Debug)]
pub struct ManualClock {
    inner: Mutex<(DateTime<Utc>, Duration)>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new((start, Duration::ZERO)),
        })
    }

    /// Move both wall and monotonic time forward.
    pub fn advance(&self, d: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += chrono::Duration::from_std(d).unwrap_or_default();
        g.1 += d;
    }

    /// Step the wall clock only (as NTP would).
    pub fn set_wall(&self, t: DateTime<Utc>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0 = t;
    }
}

impl Clock for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn monotonic(&self) -> Duration {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// When the process started (set first thing in `main`; otherwise the first
/// time anyone asks). For uptimes such as SNMP's sysUpTime.
pub static PROCESS_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Time since [`PROCESS_START`].
pub fn process_uptime() -> std::time::Duration {
    PROCESS_START.get_or_init(std::time::Instant::now).elapsed()
}
