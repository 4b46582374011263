//! Scheduled ramps: a rollout's percentage raised step by step (`1,10,50,100` every hour)
//! while its target is healthy, held while it is not.
//!
//! The schedule is data (the steps, the interval, the step the rollout is at and when it got
//! there) and time is an argument, so a server that restarts resumes where it was.

use std::time::Duration;

use serde::Serialize;

use crate::{Error, Result, Timestamp};

/// A ramp: percentages to go through, one step every `every`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ramp {
    /// Strictly increasing percentages, the last one 100.
    pub steps: Vec<u8>,
    /// Time between steps.
    #[serde(serialize_with = "as_millis")]
    pub every: Duration,
}

fn as_millis<S: serde::Serializer>(every: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(every.as_millis()).unwrap_or(u64::MAX))
}

/// The shortest time between steps.
pub const MIN_RAMP_INTERVAL: Duration = Duration::from_secs(1);

impl Ramp {
    /// A ramp from its steps (`1,10,50,100`) and interval.
    ///
    /// # Errors
    /// [`Error::Release`] when a step is not a number from 1 to 100, the steps do not
    /// increase, the last is not 100, or the interval is under [`MIN_RAMP_INTERVAL`].
    pub fn new(steps: &str, every: Duration) -> Result<Self> {
        let invalid = |reason: String| Error::Release { reason };
        let parsed = steps
            .split(',')
            .map(|step| {
                step.trim()
                    .trim_end_matches('%')
                    .parse::<u8>()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| {
                        invalid(format!(
                            "ramp step `{}` is not a percentage from 1 to 100",
                            step.trim()
                        ))
                    })
            })
            .collect::<Result<Vec<u8>>>()?;
        if parsed.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(invalid(format!(
                "ramp steps `{steps}` must increase, e.g. `1,10,50,100`"
            )));
        }
        if parsed.last() != Some(&100) {
            return Err(invalid(format!(
                "ramp steps `{steps}` must end at 100, e.g. `1,10,50,100`"
            )));
        }
        if every < MIN_RAMP_INTERVAL {
            return Err(invalid(format!(
                "a ramp interval must be at least {} s",
                MIN_RAMP_INTERVAL.as_secs()
            )));
        }
        Ok(Self {
            steps: parsed,
            every,
        })
    }

    /// The percentage a rollout starts at: the first step.
    #[must_use]
    pub fn first(&self) -> u8 {
        self.steps[0]
    }

    /// The steps as written: `1,10,50,100`.
    #[must_use]
    pub fn steps_text(&self) -> String {
        self.steps
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a ramp does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RampAction {
    /// The next step is not due yet.
    Wait {
        /// When it is due.
        due: Timestamp,
    },
    /// The next step is due but the target is not healthy: stay.
    Hold,
    /// Raise the rollout to `percentage` (100 completes it).
    Advance {
        /// The new percentage.
        percentage: u8,
    },
    /// The ramp has no step left.
    Done,
}

/// The ramp's next move, for a rollout at `percentage` since `since`.
///
/// The next step is the first one above `percentage` (so a person raising the percentage by
/// hand moves the ramp along); it is due `every` after `since`, and taken only when
/// `healthy`.
#[must_use]
pub fn ramp_action(
    ramp: &Ramp,
    percentage: u8,
    since: Timestamp,
    now: Timestamp,
    healthy: bool,
) -> RampAction {
    let Some(&next) = ramp.steps.iter().find(|&&step| step > percentage) else {
        return RampAction::Done;
    };
    let every = i64::try_from(ramp.every.as_millis()).unwrap_or(i64::MAX);
    let due_ms = since.unix_millis().saturating_add(every);
    if now.unix_millis() < due_ms {
        return match Timestamp::from_unix_millis(due_ms) {
            Ok(due) => RampAction::Wait { due },
            // Due beyond the year 9999: never.
            Err(_) => RampAction::Hold,
        };
    }
    if healthy {
        RampAction::Advance { percentage: next }
    } else {
        RampAction::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000 + seconds * 1000).unwrap()
    }

    fn hourly() -> Ramp {
        Ramp::new("1,10,50,100", Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn steps_are_checked() {
        assert_eq!(hourly().steps, vec![1, 10, 50, 100]);
        assert_eq!(hourly().steps_text(), "1,10,50,100");
        assert_eq!(
            Ramp::new(" 5%, 100 ", Duration::from_secs(60))
                .unwrap()
                .first(),
            5
        );
        for (steps, fragment) in [
            ("1,10,50", "must end at 100"),
            ("10,5,100", "must increase"),
            ("10,10,100", "must increase"),
            ("0,100", "`0` is not a percentage"),
            ("1,x,100", "`x` is not a percentage"),
            ("", "`` is not a percentage"),
        ] {
            let err = Ramp::new(steps, Duration::from_secs(60))
                .unwrap_err()
                .to_string();
            assert!(err.contains(fragment), "{steps}: {err}");
        }
        assert!(Ramp::new("1,100", Duration::from_millis(10)).is_err());
    }

    #[test]
    fn a_ramp_waits_then_advances_step_by_step() {
        let ramp = hourly();
        assert_eq!(
            ramp_action(&ramp, 1, at(0), at(10), true),
            RampAction::Wait { due: at(3600) }
        );
        assert_eq!(
            ramp_action(&ramp, 1, at(0), at(3600), true),
            RampAction::Advance { percentage: 10 }
        );
        assert_eq!(
            ramp_action(&ramp, 10, at(3600), at(7200), true),
            RampAction::Advance { percentage: 50 }
        );
        assert_eq!(
            ramp_action(&ramp, 50, at(7200), at(10800), true),
            RampAction::Advance { percentage: 100 }
        );
        assert_eq!(
            ramp_action(&ramp, 100, at(10800), at(99999), true),
            RampAction::Done
        );
    }

    #[test]
    fn an_unhealthy_target_holds_the_ramp_until_it_recovers() {
        let ramp = hourly();
        assert_eq!(
            ramp_action(&ramp, 10, at(0), at(5000), false),
            RampAction::Hold
        );
        assert_eq!(
            ramp_action(&ramp, 10, at(0), at(9000), true),
            RampAction::Advance { percentage: 50 }
        );
    }

    #[test]
    fn a_percentage_raised_by_hand_moves_the_ramp_along() {
        assert_eq!(
            ramp_action(&hourly(), 30, at(0), at(3600), true),
            RampAction::Advance { percentage: 50 }
        );
    }
}
