//! Device health: the state machine the poller drives. Pure (no I/O, no
//! clock of its own): it takes the stored tracker and one poll outcome and
//! says what the device's state becomes, why, and what was noticed on the
//! way (firmware changed, a different camera at the address, a reboot, a
//! drifting clock). Flap suppression: `fail_to_offline` failures in a row
//! take a device offline, `ok_to_online` successes bring it back.

use crate::onvif::{DeviceInformation, FaultClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Adopted, not polled yet.
    Unknown,
    Online,
    /// Answering, but with trouble: a failed poll below the offline
    /// threshold, a slow answer, or a drifting clock.
    Degraded,
    Offline,
    /// The camera refuses our credentials.
    Unauthorized,
    /// A different camera (another serial) answers at this address. Stays
    /// until someone re-adopts or confirms it.
    Replaced,
}

impl HealthState {
    pub const ALL: [HealthState; 6] = [
        HealthState::Unknown,
        HealthState::Online,
        HealthState::Degraded,
        HealthState::Offline,
        HealthState::Unauthorized,
        HealthState::Replaced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Online => "online",
            HealthState::Degraded => "degraded",
            HealthState::Offline => "offline",
            HealthState::Unauthorized => "unauthorized",
            HealthState::Replaced => "replaced",
        }
    }

    /// Stored statuses from before the poller (`adopted`, …) read as unknown.
    pub fn parse(s: &str) -> HealthState {
        HealthState::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .unwrap_or(HealthState::Unknown)
    }
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub fail_to_offline: u32,
    pub ok_to_online: u32,
    /// |camera clock − ours| above this is degraded (and an event).
    pub drift_threshold_ms: i64,
    /// An answer slower than this is degraded.
    pub slow_ms: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            fail_to_offline: 3,
            ok_to_online: 2,
            drift_threshold_ms: 5_000,
            slow_ms: 2_000,
        }
    }
}

/// What the poller keeps per device between polls (stored on the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub state: HealthState,
    pub failures: u32,
    pub successes: u32,
    /// Identity last read, to notice a swap or an upgrade.
    pub serial: String,
    pub firmware: String,
}

/// One poll.
#[derive(Debug, Clone)]
pub enum PollOutcome {
    Answered {
        latency_ms: u32,
        drift_ms: i64,
        /// Read this poll (at the identity cadence, or after a recovery).
        info: Option<DeviceInformation>,
        /// The camera clock jumped against its own earlier course.
        clock_jump_ms: Option<i64>,
    },
    Failed {
        class: FaultClass,
        message: String,
        latency_ms: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HealthEvent {
    FirmwareChanged {
        from: String,
        to: String,
    },
    SerialChanged {
        from: String,
        to: String,
    },
    CredentialsRefused,
    /// A clock jump: the camera rebooted, or its time was reset.
    Rebooted {
        jump_ms: i64,
    },
    DriftHigh {
        drift_ms: i64,
    },
    /// The device's recording stopped (connection, auth, no frames).
    RecordingStopped {
        reason: String,
    },
    /// Its recording is running again.
    RecordingResumed,
    /// A firmware upgrade of the device failed (rollouts).
    FirmwareUpgradeFailed {
        version: String,
        reason: String,
    },
    /// The camera's configuration no longer matches its provisioning
    /// profile (or matches again).
    ConfigDrift {
        summary: String,
        drifted: bool,
    },
    /// A camera notification on a watched topic (PullPoint events).
    CameraEvent {
        topic: String,
        /// The condition is on (true), over (false), or has no on/off
        /// meaning (None: a reboot report).
        active: Option<bool>,
        summary: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: HealthState,
    pub to: HealthState,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub tracker: Tracker,
    /// Why the device is in its state now (empty: unchanged).
    pub reason: String,
    pub transition: Option<Transition>,
    pub events: Vec<HealthEvent>,
}

/// Apply one poll outcome to a tracker.
pub fn observe(cfg: &HealthConfig, t: &Tracker, outcome: &PollOutcome) -> Observation {
    let mut next = t.clone();
    let mut events = Vec::new();
    let mut to = t.state;
    let mut reason = String::new();
    match outcome {
        PollOutcome::Failed {
            class: FaultClass::Unauthorized,
            message,
            ..
        } => {
            next.failures = next.failures.saturating_add(1);
            next.successes = 0;
            if t.state != HealthState::Unauthorized {
                events.push(HealthEvent::CredentialsRefused);
            }
            // A refusal is an answer, not a flap: no threshold.
            if t.state != HealthState::Replaced {
                to = HealthState::Unauthorized;
                reason = format!("credentials refused: {message}");
            }
        }
        PollOutcome::Failed { class, message, .. } => {
            next.failures = next.failures.saturating_add(1);
            next.successes = 0;
            let why = format!("{}: {message}", class.as_str());
            if next.failures >= cfg.fail_to_offline {
                if matches!(
                    t.state,
                    HealthState::Online | HealthState::Degraded | HealthState::Unknown
                ) {
                    to = HealthState::Offline;
                    reason = format!("{} polls failed in a row; last {why}", next.failures);
                }
            } else if t.state == HealthState::Online {
                to = HealthState::Degraded;
                reason = format!(
                    "{} of {} polls failed; last {why}",
                    next.failures, cfg.fail_to_offline
                );
            }
        }
        PollOutcome::Answered {
            latency_ms,
            drift_ms,
            info,
            clock_jump_ms,
        } => {
            next.failures = 0;
            next.successes = next.successes.saturating_add(1);
            if let Some(j) = clock_jump_ms {
                events.push(HealthEvent::Rebooted { jump_ms: *j });
            }
            if drift_ms.abs() > cfg.drift_threshold_ms {
                events.push(HealthEvent::DriftHigh {
                    drift_ms: *drift_ms,
                });
            }
            let mut replaced = false;
            if let Some(i) = info {
                if !t.serial.is_empty()
                    && !i.serial_number.is_empty()
                    && i.serial_number != t.serial
                {
                    events.push(HealthEvent::SerialChanged {
                        from: t.serial.clone(),
                        to: i.serial_number.clone(),
                    });
                    replaced = true;
                } else {
                    if !t.firmware.is_empty()
                        && !i.firmware_version.is_empty()
                        && i.firmware_version != t.firmware
                    {
                        events.push(HealthEvent::FirmwareChanged {
                            from: t.firmware.clone(),
                            to: i.firmware_version.clone(),
                        });
                    }
                    if !i.serial_number.is_empty() {
                        next.serial = i.serial_number.clone();
                    }
                    if !i.firmware_version.is_empty() {
                        next.firmware = i.firmware_version.clone();
                    }
                }
            }
            let trouble = if drift_ms.abs() > cfg.drift_threshold_ms {
                Some(format!("clock off by {} s", drift_ms / 1000))
            } else if *latency_ms > cfg.slow_ms {
                Some(format!("slow answer ({latency_ms} ms)"))
            } else {
                None
            };
            if replaced {
                to = HealthState::Replaced;
                reason = format!(
                    "a different camera answers here (serial {} → {})",
                    t.serial,
                    info.as_ref()
                        .map(|i| i.serial_number.as_str())
                        .unwrap_or("")
                );
            } else {
                match t.state {
                    HealthState::Replaced => {}
                    // Credentials are proven only by an authenticated read.
                    HealthState::Unauthorized if info.is_none() => {}
                    HealthState::Offline | HealthState::Unauthorized
                        if next.successes < cfg.ok_to_online => {}
                    _ => {
                        to = if trouble.is_some() {
                            HealthState::Degraded
                        } else {
                            HealthState::Online
                        };
                        reason = trouble.unwrap_or_else(|| {
                            if t.state == HealthState::Unknown {
                                "first poll answered".into()
                            } else {
                                format!("{} polls answered", next.successes)
                            }
                        });
                    }
                }
            }
        }
    }
    next.state = to;
    let transition = (to != t.state).then(|| Transition {
        from: t.state,
        to,
        reason: reason.clone(),
    });
    Observation {
        tracker: next,
        reason,
        transition,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(state: HealthState) -> Tracker {
        Tracker {
            state,
            failures: 0,
            successes: 0,
            serial: "S1".into(),
            firmware: "1.0".into(),
        }
    }

    fn ok(latency_ms: u32) -> PollOutcome {
        PollOutcome::Answered {
            latency_ms,
            drift_ms: 10,
            info: None,
            clock_jump_ms: None,
        }
    }

    fn fail(class: FaultClass) -> PollOutcome {
        PollOutcome::Failed {
            class,
            message: "x".into(),
            latency_ms: 0,
        }
    }

    fn info(serial: &str, fw: &str) -> DeviceInformation {
        DeviceInformation {
            manufacturer: "M".into(),
            model: "X".into(),
            firmware_version: fw.into(),
            serial_number: serial.into(),
            hardware_id: String::new(),
        }
    }

    fn run(
        cfg: &HealthConfig,
        mut t: Tracker,
        outcomes: &[PollOutcome],
    ) -> (Tracker, Vec<Transition>) {
        let mut seen = Vec::new();
        for o in outcomes {
            let obs = observe(cfg, &t, o);
            seen.extend(obs.transition);
            t = obs.tracker;
        }
        (t, seen)
    }

    #[test]
    fn three_failures_take_a_device_offline_and_two_successes_bring_it_back() {
        let cfg = HealthConfig::default();
        let t = tracker(HealthState::Online);
        let (t, tr) = run(
            &cfg,
            t,
            &[fail(FaultClass::Timeout), fail(FaultClass::Timeout)],
        );
        assert_eq!(t.state, HealthState::Degraded);
        assert_eq!(tr.len(), 1);
        let (t, tr) = run(&cfg, t, &[fail(FaultClass::Transport)]);
        assert_eq!(t.state, HealthState::Offline);
        assert!(
            tr[0]
                .reason
                .starts_with("3 polls failed in a row; last transport")
        );
        // One success is not enough; a failure in between resets it.
        let (t, tr) = run(&cfg, t, &[ok(5), fail(FaultClass::Timeout), ok(5)]);
        assert_eq!((t.state, tr.len()), (HealthState::Offline, 0));
        let (t, tr) = run(&cfg, t, &[ok(5)]);
        assert_eq!(t.state, HealthState::Online);
        assert_eq!(tr[0].from, HealthState::Offline);
    }

    #[test]
    fn a_single_blip_never_reaches_offline() {
        let cfg = HealthConfig::default();
        let outcomes: Vec<PollOutcome> = (0..20)
            .flat_map(|_| {
                [
                    fail(FaultClass::Timeout),
                    ok(5),
                    fail(FaultClass::Malformed),
                    ok(5),
                ]
            })
            .collect();
        let (t, tr) = run(&cfg, tracker(HealthState::Online), &outcomes);
        assert_eq!(t.state, HealthState::Online);
        assert!(tr.iter().all(|t| t.to != HealthState::Offline));
    }

    #[test]
    fn refused_credentials_are_immediate_and_need_an_authenticated_read_to_clear() {
        let cfg = HealthConfig::default();
        let o = observe(
            &cfg,
            &tracker(HealthState::Online),
            &fail(FaultClass::Unauthorized),
        );
        assert_eq!(o.tracker.state, HealthState::Unauthorized);
        assert_eq!(o.events, vec![HealthEvent::CredentialsRefused]);
        // Anonymous clock reads keep answering: still unauthorized.
        let (t, _) = run(&cfg, o.tracker, &[ok(5), ok(5), ok(5)]);
        assert_eq!(t.state, HealthState::Unauthorized);
        let with_info = PollOutcome::Answered {
            latency_ms: 5,
            drift_ms: 0,
            info: Some(info("S1", "1.0")),
            clock_jump_ms: None,
        };
        let (t, _) = run(&cfg, t, &[with_info]);
        assert_eq!(t.state, HealthState::Online);
    }

    #[test]
    fn firmware_and_serial_changes_are_noticed() {
        let cfg = HealthConfig::default();
        let upgraded = PollOutcome::Answered {
            latency_ms: 5,
            drift_ms: 0,
            info: Some(info("S1", "2.0")),
            clock_jump_ms: Some(-3_600_000),
        };
        let o = observe(&cfg, &tracker(HealthState::Online), &upgraded);
        assert_eq!(o.tracker.state, HealthState::Online);
        assert!(o.events.contains(&HealthEvent::FirmwareChanged {
            from: "1.0".into(),
            to: "2.0".into()
        }));
        assert!(o.events.contains(&HealthEvent::Rebooted {
            jump_ms: -3_600_000
        }));
        assert_eq!(o.tracker.firmware, "2.0");
        let swapped = PollOutcome::Answered {
            latency_ms: 5,
            drift_ms: 0,
            info: Some(info("S2", "1.0")),
            clock_jump_ms: None,
        };
        let o = observe(&cfg, &o.tracker, &swapped);
        assert_eq!(o.tracker.state, HealthState::Replaced);
        assert_eq!(o.tracker.serial, "S1", "the adopted identity is kept");
        // Replaced is sticky: polls answering do not clear it.
        let (t, _) = run(&cfg, o.tracker, &[ok(5), ok(5), fail(FaultClass::Timeout)]);
        assert_eq!(t.state, HealthState::Replaced);
    }

    #[test]
    fn drift_and_slowness_degrade() {
        let cfg = HealthConfig::default();
        let drifting = PollOutcome::Answered {
            latency_ms: 5,
            drift_ms: 3_600_000,
            info: None,
            clock_jump_ms: None,
        };
        let o = observe(&cfg, &tracker(HealthState::Unknown), &drifting);
        assert_eq!(o.tracker.state, HealthState::Degraded);
        assert_eq!(o.transition.unwrap().reason, "clock off by 3600 s");
        assert!(matches!(o.events[0], HealthEvent::DriftHigh { .. }));
        let o = observe(&cfg, &o.tracker, &ok(5_000));
        assert_eq!(o.tracker.state, HealthState::Degraded);
        assert_eq!(o.reason, "slow answer (5000 ms)");
        let o = observe(&cfg, &o.tracker, &ok(5));
        assert_eq!(o.tracker.state, HealthState::Online);
    }
}
