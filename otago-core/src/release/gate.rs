//! Health per update and the gate that reverts a failing rollout by itself.
//!
//! Devices report the update they run (`expo-current-update-id`) and the updates they failed
//! to launch (`expo-recent-failed-update-ids`); the server counts, per update, the distinct
//! devices it was served to, that run it and that failed it. The failure rate is failed ÷
//! served. A gate judges it only once enough devices were served, so a single early crash
//! does not revert a rollout.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{Error, Result};

/// Distinct devices counted for one update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpdateHealth {
    /// Devices the update was served to.
    pub served: u64,
    /// Devices that report running it.
    pub running: u64,
    /// Devices that report it failed to launch.
    pub failed: u64,
}

impl UpdateHealth {
    /// The sum of two counts (of the updates of one group, one per platform: different
    /// devices).
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            served: self.served + other.served,
            running: self.running + other.running,
            failed: self.failed + other.failed,
        }
    }

    /// failed ÷ served, as a percentage; `None` before the update was served. A device can
    /// report a failure the counts have not seen served (served by a replica whose counts
    /// are not merged yet), so the rate is capped at 100.
    #[must_use]
    pub fn failure_rate(self) -> Option<FailureRate> {
        if self.served == 0 {
            return None;
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "device counts are far below 2^52"
        )]
        let percent = (self.failed as f64 * 100.0 / self.served as f64).min(100.0);
        Some(FailureRate(percent))
    }
}

/// A failure rate, in percent (0–100).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct FailureRate(f64);

impl FailureRate {
    /// A rate of `percent` percent.
    ///
    /// # Errors
    /// [`Error::Release`] outside 0–100 (or not a number).
    pub fn percent(percent: f64) -> Result<Self> {
        if (0.0..=100.0).contains(&percent) {
            Ok(Self(percent))
        } else {
            Err(Error::Release {
                reason: format!("a failure rate must be 0 to 100 percent, not {percent}"),
            })
        }
    }

    /// The rate in percent.
    #[must_use]
    pub fn as_percent(self) -> f64 {
        self.0
    }
}

impl fmt::Display for FailureRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} %", self.0)
    }
}

impl FromStr for FailureRate {
    type Err = Error;

    /// `5`, `5%` and `5 %` are all five percent.
    fn from_str(text: &str) -> Result<Self> {
        let number = text.trim().trim_end_matches('%').trim_end();
        let percent: f64 = number.parse().map_err(|_| Error::Release {
            reason: format!("`{text}` is not a failure rate; write a percentage such as `5%`"),
        })?;
        Self::percent(percent)
    }
}

/// The devices a target must have been served to before its gate judges it.
pub const DEFAULT_MIN_DEVICES: u64 = 20;

/// The failure rate a gated rollout may reach, by default.
pub const DEFAULT_MAX_FAILURE_PERCENT: f64 = 5.0;

/// When a rollout reverts itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HealthGate {
    /// Revert once the failure rate is above this.
    pub max_failure_rate: FailureRate,
    /// Judge only once the target was served to at least this many devices.
    pub min_devices: u64,
}

impl Default for HealthGate {
    fn default() -> Self {
        Self {
            max_failure_rate: FailureRate(DEFAULT_MAX_FAILURE_PERCENT),
            min_devices: DEFAULT_MIN_DEVICES,
        }
    }
}

/// What a gate makes of a target's health.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Served to enough devices and at or under the limit.
    Healthy {
        /// The failure rate.
        rate: FailureRate,
    },
    /// Not served to enough devices yet to judge.
    TooFewDevices {
        /// Devices served so far.
        served: u64,
        /// Devices needed.
        needed: u64,
    },
    /// Over the limit: revert.
    Unhealthy {
        /// The failure rate.
        rate: FailureRate,
        /// Devices that failed.
        failed: u64,
        /// Devices served.
        served: u64,
    },
}

impl HealthGate {
    /// Judges a target's health.
    #[must_use]
    pub fn judge(&self, health: UpdateHealth) -> Verdict {
        match health.failure_rate() {
            Some(rate) if health.served >= self.min_devices => {
                if rate > self.max_failure_rate {
                    Verdict::Unhealthy {
                        rate,
                        failed: health.failed,
                        served: health.served,
                    }
                } else {
                    Verdict::Healthy { rate }
                }
            }
            _ => Verdict::TooFewDevices {
                served: health.served,
                needed: self.min_devices,
            },
        }
    }

    /// Whether a ramp may take its next step: the target is at or under the limit (judged
    /// on however many devices it has, so a ramp holds on an early crash that the gate does
    /// not revert yet).
    #[must_use]
    pub fn allows_ramp(&self, health: UpdateHealth) -> bool {
        health
            .failure_rate()
            .is_none_or(|rate| rate <= self.max_failure_rate)
    }

    /// Why a revert happened, for the record: e.g. `failure rate 12.0 % (6 of 50 devices)
    /// is over 5.0 %`.
    #[must_use]
    pub fn reason(&self, verdict: &Verdict) -> Option<String> {
        match verdict {
            Verdict::Unhealthy {
                rate,
                failed,
                served,
            } => Some(format!(
                "failure rate {rate} ({failed} of {served} devices) is over {}",
                self.max_failure_rate
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(served: u64, failed: u64) -> UpdateHealth {
        UpdateHealth {
            served,
            running: served - failed,
            failed,
        }
    }

    #[test]
    fn rates_parse_with_or_without_a_percent_sign() {
        for text in ["5", "5%", "5 %", " 5.0% "] {
            assert_eq!(
                text.parse::<FailureRate>().unwrap().as_percent(),
                5.0,
                "{text}"
            );
        }
        for text in ["", "five", "-1", "101%", "NaN"] {
            assert!(text.parse::<FailureRate>().is_err(), "{text}");
        }
    }

    #[test]
    fn the_gate_waits_for_enough_devices() {
        let gate = HealthGate::default();
        assert_eq!(
            gate.judge(health(19, 19)),
            Verdict::TooFewDevices {
                served: 19,
                needed: 20
            }
        );
        assert!(
            matches!(gate.judge(health(20, 1)), Verdict::Healthy { .. }),
            "5 % is not over 5 %"
        );
        assert!(matches!(
            gate.judge(health(20, 2)),
            Verdict::Unhealthy {
                failed: 2,
                served: 20,
                ..
            }
        ));
        assert_eq!(
            gate.reason(&gate.judge(health(50, 6))).unwrap(),
            "failure rate 12.0 % (6 of 50 devices) is over 5.0 %"
        );
    }

    #[test]
    fn ramps_hold_on_early_failures() {
        let gate = HealthGate::default();
        assert!(gate.allows_ramp(health(0, 0)));
        assert!(gate.allows_ramp(health(5, 0)));
        assert!(
            !gate.allows_ramp(health(5, 1)),
            "20 % on five devices holds the ramp"
        );
    }

    #[test]
    fn failures_beyond_served_are_capped() {
        let over = UpdateHealth {
            served: 2,
            running: 0,
            failed: 5,
        };
        assert_eq!(over.failure_rate().unwrap().as_percent(), 100.0);
        assert_eq!(UpdateHealth::default().failure_rate(), None);
    }
}
