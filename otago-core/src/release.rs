//! Releases: what one channel (a project, platform and runtime version) serves, and the rules
//! that move it.
//!
//! A channel has a *base*: the update (or `rollBackToEmbedded` directive) every device gets,
//! or nothing, in which case devices keep the update embedded in their binary. A *rollout*
//! puts a *target* on top of the base for a share of devices; the base is then the rollout's
//! *control*. Every device gets exactly one of the two: the target when its bucket (see
//! [`crate::rollout_bucket`]) is under the percentage, else the control. One rollout runs at
//! a time: it ends when raised to 100 % (the target becomes the base) or when reverted.
//!
//! Each rollout comes with a *standby revert* ([`standby_body`]), signed by the deployer and
//! served only after a revert: devices on the target get it (and with it the control's
//! code), devices on the control are told there is no update. A device never gets an update
//! it reported as failed to launch: it gets the next eligible one, or no update.

mod devices;
mod gate;
mod ramp;
mod standby;

pub use devices::{DeviceHash, DeviceSketch, SKETCH_BYTES};
pub use gate::{
    DEFAULT_MAX_FAILURE_PERCENT, DEFAULT_MIN_DEVICES, FailureRate, HealthGate, UpdateHealth,
    Verdict,
};
pub use ramp::{MIN_RAMP_INTERVAL, Ramp, RampAction, ramp_action};
pub use standby::{check_standby, standby_body, standby_update};

use serde::Serialize;

use crate::{Error, PublishedUpdate, Result, UpdateId, UpdateKind};

/// The part an update plays in a channel's release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// What every device outside a rollout gets (a rollout's control).
    Base,
    /// The update being rolled out.
    Target,
    /// The signed revert, served once the rollout is reverted.
    Standby,
}

impl Role {
    /// Every role, in [`Role::index`] order.
    pub const ALL: [Self; 3] = [Self::Base, Self::Target, Self::Standby];

    /// 0, 1 or 2: a position in arrays kept per role.
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Base => 0,
            Self::Target => 1,
            Self::Standby => 2,
        }
    }

    /// `base`, `target` or `standby`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Target => "target",
            Self::Standby => "standby",
        }
    }
}

/// A rollout of a target over the channel's base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The update rolled out (a manifest).
    pub target: PublishedUpdate,
    /// Share of devices (0–99) that get the target.
    pub percentage: u8,
    /// The standby revert (see [`standby_body`]).
    pub standby: PublishedUpdate,
    /// Whether the rollout was reverted: devices on the target then get the standby.
    pub reverted: bool,
}

/// What a channel serves: its base and the rollout on top of it, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelRelease {
    /// What every device outside a rollout gets; `None` when nothing is released (devices
    /// keep their embedded update).
    pub base: Option<PublishedUpdate>,
    /// Ids that carry the base's code besides its own (standbys of earlier reverted rollouts
    /// over the same base): a device running one is on the base and needs no update.
    pub base_aliases: Vec<UpdateId>,
    /// The rollout in progress, or the reverted one whose standby is served.
    pub rollout: Option<Rollout>,
}

impl From<PublishedUpdate> for ChannelRelease {
    /// A channel that serves `update` to every device.
    fn from(update: PublishedUpdate) -> Self {
        Self {
            base: Some(update),
            ..Self::default()
        }
    }
}

impl ChannelRelease {
    /// The id of the newest update published to the channel: the rollout's target (reverted
    /// or not), else the base's; `None` when nothing is released.
    #[must_use]
    pub fn newest_id(&self) -> Option<UpdateId> {
        self.rollout
            .as_ref()
            .map(|rollout| &rollout.target)
            .or(self.base.as_ref())
            .map(|update| update.id)
    }

    /// The update playing `role`, if any.
    #[must_use]
    pub fn get(&self, role: Role) -> Option<&PublishedUpdate> {
        match role {
            Role::Base => self.base.as_ref(),
            Role::Target => self.rollout.as_ref().map(|r| &r.target),
            Role::Standby => self.rollout.as_ref().map(|r| &r.standby),
        }
    }

    /// Every update with its role: base, target, standby.
    pub fn updates(&self) -> impl Iterator<Item = (Role, &PublishedUpdate)> {
        Role::ALL
            .into_iter()
            .filter_map(|role| self.get(role).map(|update| (role, update)))
    }

    /// The update a device could run now that has the latest `createdAt`: the standby
    /// (newer than its target) when there is a rollout, else the base. A new update must be
    /// later than this, or devices that run it would ignore the new one.
    #[must_use]
    pub fn newest(&self) -> Option<&PublishedUpdate> {
        self.updates()
            .map(|(_, update)| update)
            .max_by_key(|u| u.created_at)
    }

    /// The rollout in progress (not reverted), if any.
    #[must_use]
    pub fn rollout_in_progress(&self) -> Option<&Rollout> {
        self.rollout.as_ref().filter(|r| !r.reverted)
    }

    /// Checks the release is one clients can be served: percentages under 100, a target
    /// that is a manifest newer than the base, a valid standby ([`check_standby`]), distinct
    /// ids.
    ///
    /// # Errors
    /// [`Error::Release`] naming the problem.
    pub fn check(&self) -> Result<()> {
        let refuse = |reason: String| Err(Error::Release { reason });
        let Some(rollout) = &self.rollout else {
            return Ok(());
        };
        if rollout.percentage >= 100 {
            return refuse(format!(
                "a rollout of update {} at {}% is complete: make it the base",
                rollout.target.id, rollout.percentage
            ));
        }
        if rollout.target.kind != UpdateKind::Manifest {
            return refuse(format!(
                "update {} is a rollback to the embedded update, which is released to every device at once, not rolled out",
                rollout.target.id
            ));
        }
        if let Some(base) = &self.base
            && rollout.target.created_at <= base.created_at
        {
            return refuse(format!(
                "the rollout's update {} ({}) is not newer than the update it replaces, {} ({}): devices would ignore it",
                rollout.target.id, rollout.target.created_at, base.id, base.created_at
            ));
        }
        check_standby(self.base.as_ref(), &rollout.target, &rollout.standby)
    }

    /// Refuses to start a rollout or publish while one is in progress: finish it (raise it
    /// to 100 %) or revert it first.
    ///
    /// # Errors
    /// [`Error::Release`] naming the rollout in progress.
    pub fn check_can_publish(&self) -> Result<()> {
        match self.rollout_in_progress() {
            Some(rollout) => Err(Error::Release {
                reason: format!(
                    "update {} is being rolled out to {}% of devices; finish that rollout or revert it first",
                    rollout.target.id, rollout.percentage
                ),
            }),
            None => Ok(()),
        }
    }
}

impl ChannelRelease {
    /// The release after publishing `update` to `percentage` percent of devices: at 100 it
    /// becomes the base; below, it is the target of a rollout over the current base, and
    /// `standby` is that rollout's standby revert.
    ///
    /// # Errors
    /// [`Error::Release`] when a rollout is in progress ([`ChannelRelease::check_can_publish`]),
    /// `update` is not newer than what devices may run ([`ChannelRelease::newest`]), a
    /// rollout lacks its standby, or the result breaks a rule of [`ChannelRelease::check`].
    pub fn publish(
        &self,
        update: PublishedUpdate,
        percentage: u8,
        standby: Option<PublishedUpdate>,
    ) -> Result<Self> {
        self.check_can_publish()?;
        if let Some(newest) = self.newest()
            && update.created_at <= newest.created_at
        {
            return Err(Error::Release {
                reason: format!(
                    "update {} ({}) is not newer than update {} ({}) that devices may run: they would ignore it; build it again now",
                    update.id, update.created_at, newest.id, newest.created_at
                ),
            });
        }
        let next = if percentage >= 100 {
            Self::from(update)
        } else {
            let standby = standby.ok_or_else(|| Error::Release {
                reason: format!(
                    "a rollout of update {} needs its standby revert, signed like the update",
                    update.id
                ),
            })?;
            let mut base_aliases = self.base_aliases.clone();
            base_aliases.extend(self.rollout.as_ref().map(|r| r.standby.id));
            Self {
                base: self.base.clone(),
                base_aliases,
                rollout: Some(Rollout {
                    target: update,
                    percentage,
                    standby,
                    reverted: false,
                }),
            }
        };
        next.check()?;
        Ok(next)
    }

    /// The release after raising the rollout in progress to `percentage` (100 completes it:
    /// its target becomes the base).
    ///
    /// # Errors
    /// [`Error::Release`] when no rollout is in progress or the change is refused by
    /// [`check_rollout_change`].
    pub fn raise(&self, percentage: u8) -> Result<Self> {
        let rollout = self.in_progress_or_refuse()?;
        check_rollout_change(rollout.percentage, percentage)?;
        if percentage >= 100 {
            return Ok(Self::from(rollout.target.clone()));
        }
        let mut next = self.clone();
        if let Some(rollout) = &mut next.rollout {
            rollout.percentage = percentage;
        }
        Ok(next)
    }

    /// The release after reverting the rollout in progress: devices on its target get the
    /// standby, the others the base.
    ///
    /// # Errors
    /// [`Error::Release`] when no rollout is in progress.
    pub fn revert(&self) -> Result<Self> {
        self.in_progress_or_refuse()?;
        let mut next = self.clone();
        if let Some(rollout) = &mut next.rollout {
            rollout.reverted = true;
        }
        Ok(next)
    }

    fn in_progress_or_refuse(&self) -> Result<&Rollout> {
        self.rollout_in_progress().ok_or_else(|| Error::Release {
            reason: match &self.rollout {
                Some(reverted) => format!(
                    "no rollout is in progress: the rollout of update {} was reverted",
                    reverted.target.id
                ),
                None => "no rollout is in progress".to_owned(),
            },
        })
    }
}

/// Checks a change of a rollout's percentage from `current` to `requested`: raising it is
/// allowed (100 completes the rollout), lowering it is not, since devices that have the
/// update keep it; a revert is what takes it back.
///
/// # Errors
/// [`Error::Release`] when `requested` is over 100 or below `current`.
pub fn check_rollout_change(current: u8, requested: u8) -> Result<()> {
    if requested > 100 {
        return Err(Error::Release {
            reason: format!("a rollout percentage must be 0 to 100, not {requested}"),
        });
    }
    if requested < current {
        return Err(Error::Release {
            reason: format!(
                "the rollout is at {current}%; lowering it to {requested}% would not take the update back from the devices that have it"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
