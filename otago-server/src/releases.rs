//! Steering a rollout: raising its percentage, reverting it, and the ticker that reverts an
//! unhealthy rollout by itself and walks ramps on schedule.
//!
//! Every change goes the same way as a publish: otago-core decides the new release of each
//! channel the group is on, the new answers are built, the store commits, and exactly what
//! was built is installed. The API, the health gate and ramps all call [`raise`] and
//! [`revert`], one at a time (the publish lock).

use std::sync::Arc;
use std::time::Duration;

use otago_core::{ChannelRelease, RampAction, Role, UpdateHealth, ramp_action};

use crate::error::{ApiError, ApiResult};
use crate::live::{LiveChannel, RolloutInfo};
use crate::state::AppState;
use crate::store::{ChannelKey, GroupRecord, GroupState, RevertRecord};

/// Who reverts when the health gate does.
pub(crate) const HEALTH_GATE: &str = "health-gate";

/// Who raises when a ramp does.
pub(crate) const RAMP: &str = "ramp";

fn channel_keys(group: &GroupRecord) -> Vec<ChannelKey> {
    group
        .updates
        .iter()
        .map(|update| ChannelKey {
            project_ref: group.project_ref.clone(),
            platform: update.platform,
            runtime_version: group.runtime_version.clone(),
        })
        .collect()
}

fn no_rollout(group: &GroupRecord) -> ApiError {
    let what = match group.state {
        GroupState::Reverted => "was reverted",
        GroupState::Full => "is released to every device",
        GroupState::Withdrawn => "is withdrawn",
        GroupState::Rollout => "is superseded",
    };
    ApiError::conflict(
        "no_rollout",
        format!("group {} has no rollout in progress: it {what}", group.id),
        format!(
            "to bring devices back after a full release, republish an earlier group: `otago rollback --project {} --to GROUP`",
            group.project_ref
        ),
    )
}

/// The current release of each of the group's channels, checking that the group's update is
/// the rollout in progress there. The caller holds the publish lock. On a shared store the
/// channels are read again from it first: another replica may have changed them a moment ago
/// (a publish through it that this one has not followed yet, a rollout step).
async fn rollout_channels(
    state: &AppState,
    group: &GroupRecord,
) -> ApiResult<Vec<(ChannelKey, ChannelRelease)>> {
    if group.state != GroupState::Rollout {
        return Err(no_rollout(group));
    }
    if state.meta.shared() {
        for key in channel_keys(group) {
            crate::follow::reload_channel_locked(state, &key).await?;
        }
    }
    let mut channels = Vec::new();
    for (key, update) in channel_keys(group).into_iter().zip(&group.updates) {
        let release = state
            .live
            .channel(&key.project_ref, key.platform, &key.runtime_version)
            .map(|channel| channel.release().clone())
            .unwrap_or_default();
        let target = release
            .rollout_in_progress()
            .map(|r| r.target.id.to_string());
        if target.as_deref() != Some(update.id.as_str()) {
            return Err(no_rollout(group));
        }
        channels.push((key, release));
    }
    Ok(channels)
}

/// Builds the answers of `releases` for `group` as it will be stored.
fn build(
    state: &AppState,
    group: &GroupRecord,
    releases: Vec<(ChannelKey, ChannelRelease)>,
) -> ApiResult<Vec<(ChannelKey, Option<Arc<LiveChannel>>)>> {
    let rollout = RolloutInfo::of(group).map_err(ApiError::internal)?;
    releases
        .into_iter()
        .map(|(key, release)| {
            let rollout = rollout.clone().filter(|_| release.rollout.is_some());
            let channel =
                LiveChannel::new(release, rollout, &state.health).map_err(ApiError::internal)?;
            Ok((key, Some(Arc::new(channel))))
        })
        .collect()
}

fn refused(err: &otago_core::Error, group: &GroupRecord) -> ApiError {
    ApiError::conflict(
        "rollout_decrease",
        err.to_string(),
        format!(
            "raise it instead, or take the update back with `otago rollout --project {} --revert`",
            group.project_ref
        ),
    )
}

/// Raises a group's rollout to `percentage` (100 completes it); returns the group as stored.
///
/// # Errors
/// 409 when the group has no rollout in progress or `percentage` is lower than its own.
pub(crate) async fn raise(
    state: &AppState,
    project_ref: &str,
    group_id: &str,
    percentage: u8,
) -> ApiResult<GroupRecord> {
    let _serialized = state.publish_lock.lock().await;
    let mut group = stored_group(state, project_ref, group_id).await?;
    let releases = rollout_channels(state, &group)
        .await?
        .into_iter()
        .map(|(key, release)| {
            Ok((
                key,
                release.raise(percentage).map_err(|e| refused(&e, &group))?,
            ))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let now = state.now();
    group.rollout_percentage = percentage;
    group.percentage_since = now;
    if percentage >= 100 {
        group.state = GroupState::Full;
    }
    let built = build(state, &group, releases)?;
    state
        .meta
        .set_rollout(project_ref, group_id, percentage, now)
        .await?;
    state.live.install(built);
    tracing::info!(project = %project_ref, group = %group_id, rollout = percentage, "rollout raised");
    Ok(group)
}

/// Reverts a group's rollout: devices on its updates get the standbys, the others no update.
///
/// # Errors
/// 409 when the group has no rollout in progress.
pub(crate) async fn revert(
    state: &AppState,
    project_ref: &str,
    group_id: &str,
    by: &str,
    reason: Option<String>,
) -> ApiResult<GroupRecord> {
    let _serialized = state.publish_lock.lock().await;
    let mut group = stored_group(state, project_ref, group_id).await?;
    let releases = rollout_channels(state, &group)
        .await?
        .into_iter()
        .map(|(key, release)| {
            let reverted = release.revert().map_err(|_| no_rollout(&group))?;
            Ok((key, reverted))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let record = RevertRecord {
        at: state.now(),
        by: by.to_owned(),
        reason,
    };
    group.state = GroupState::Reverted;
    group.revert = Some(record.clone());
    let built = build(state, &group, releases)?;
    state.meta.revert(project_ref, group_id, record).await?;
    state.live.install(built);
    if by == HEALTH_GATE {
        state.metrics.health_gate_revert();
    }
    tracing::warn!(project = %project_ref, group = %group_id, by, reason = group.revert.as_ref().and_then(|r| r.reason.as_deref()).unwrap_or(""), "rollout reverted");
    Ok(group)
}

async fn stored_group(
    state: &AppState,
    project_ref: &str,
    group_id: &str,
) -> ApiResult<GroupRecord> {
    state
        .meta
        .group(project_ref, group_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "group_not_found",
                "this project has no such group",
                "list groups with GET …/groups",
            )
        })
}

/// The health of a rollout's targets, summed over the group's channels.
fn target_health(channels: &[&Arc<LiveChannel>]) -> UpdateHealth {
    channels
        .iter()
        .filter_map(|channel| channel.counters(Role::Target))
        .map(|counters| counters.health())
        .fold(UpdateHealth::default(), UpdateHealth::plus)
}

/// One pass of the release ticker: judge every gated rollout in progress, revert the
/// unhealthy ones, and take the ramp steps that are due.
pub(crate) async fn tick(state: &AppState) {
    let mut rollouts: Vec<(String, RolloutInfo, Vec<Arc<LiveChannel>>)> = Vec::new();
    for (key, channel) in state.live.all() {
        let Some(info) = channel.rollout.clone().filter(|info| !info.reverted) else {
            continue;
        };
        match rollouts
            .iter_mut()
            .find(|(_, known, _)| known.group_id == info.group_id)
        {
            Some((_, _, channels)) => channels.push(channel),
            None => rollouts.push((key.project_ref, info, vec![channel])),
        }
    }
    let now = state.now();
    for (project_ref, info, channels) in rollouts {
        let health = target_health(&channels.iter().collect::<Vec<_>>());
        if let Some(gate) = &info.gate
            && let Some(reason) = gate.reason(&gate.judge(health))
        {
            if let Err(err) = revert(
                state,
                &project_ref,
                &info.group_id,
                HEALTH_GATE,
                Some(reason),
            )
            .await
            {
                tracing::error!(project = %project_ref, group = %info.group_id, error = %err, "the health gate could not revert a rollout");
            }
            continue;
        }
        let Some(ramp) = &info.ramp else { continue };
        let percentage = channels
            .first()
            .and_then(|c| c.release().rollout_in_progress().map(|r| r.percentage))
            .unwrap_or(100);
        let healthy = info
            .gate
            .as_ref()
            .is_none_or(|gate| gate.allows_ramp(health));
        if let RampAction::Advance { percentage } =
            ramp_action(ramp, percentage, info.percentage_since, now, healthy)
        {
            match raise(state, &project_ref, &info.group_id, percentage).await {
                Ok(_) => {
                    tracing::info!(project = %project_ref, group = %info.group_id, by = RAMP, rollout = percentage, "ramp step")
                }
                Err(err) => {
                    tracing::error!(project = %project_ref, group = %info.group_id, error = %err, "a ramp step failed")
                }
            }
        }
    }
}

/// Starts the release ticker, every `every`; abort the handle to stop it.
#[must_use]
pub(crate) fn spawn_ticker(state: &AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick_timer = tokio::time::interval(every);
        tick_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick_timer.tick().await;
            tick(&state).await;
        }
    })
}
