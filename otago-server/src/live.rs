//! The answers devices get, held in memory: for each project, platform and runtime version the
//! otago-core [`PreparedUpdates`] of its release, with every response rendered at publish time.
//!
//! Requests only read this map (an `RwLock` held for a pointer copy). Publishes, rollout
//! changes and reverts build the new channels first, commit to the store, then install exactly
//! what they built ([`LiveMap::install`]); at start every channel is built from the store.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
// foldhash (hashbrown's default) rather than SipHash: one lookup per request, and the keys
// come from authenticated publishers, not from devices.
use hashbrown::HashMap;
use otago_core::{
    AssetRequestHeaders, ChannelRelease, FailureRate, HealthGate, Platform, PreparedUpdates,
    PublishedUpdate, Ramp, Role, Rollout, StoredSignature, Timestamp, UpdateId, UpdateKind,
    standby_update,
};

use crate::health::{HealthBook, UpdateCounters};
use crate::store::{
    ChannelKey, GroupKind, GroupRecord, GroupState, MetaStore, ReleaseRecord, ServedUpdate,
    StandbyRecord, StoreResult,
};

/// The rollout a channel runs, with what the release ticker needs to steer it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RolloutInfo {
    /// The rollout's group.
    pub(crate) group_id: String,
    /// Whether it was reverted.
    pub(crate) reverted: bool,
    /// Its health gate, if any.
    pub(crate) gate: Option<HealthGate>,
    /// Its ramp, if any.
    pub(crate) ramp: Option<Ramp>,
    /// When it reached its current percentage.
    pub(crate) percentage_since: Timestamp,
}

impl RolloutInfo {
    /// The rollout of a group in rollout (or reverted); `None` for any other group.
    pub(crate) fn of(group: &GroupRecord) -> Result<Option<Self>, otago_core::Error> {
        if !matches!(group.state, GroupState::Rollout | GroupState::Reverted) {
            return Ok(None);
        }
        let gate = group
            .gate
            .map(|gate| {
                Ok::<_, otago_core::Error>(HealthGate {
                    max_failure_rate: FailureRate::percent(gate.max_failure_percent)?,
                    min_devices: gate.min_devices,
                })
            })
            .transpose()?;
        let ramp = group
            .ramp
            .as_ref()
            .map(|ramp| Ramp::new(&ramp.steps, Duration::from_millis(ramp.every_ms)))
            .transpose()?;
        Ok(Some(Self {
            group_id: group.id.clone(),
            reverted: group.state == GroupState::Reverted,
            gate,
            ramp,
            percentage_since: group.percentage_since,
        }))
    }
}

/// The prepared answers of one project, platform and runtime version.
#[derive(Debug)]
pub(crate) struct LiveChannel {
    /// Every response, rendered.
    pub(crate) prepared: PreparedUpdates,
    /// The same responses as HTTP parts, by [`otago_core::RenderedResponse::index`].
    pub(crate) wire: Vec<WireResponse>,
    /// Ids of the release's updates (lowercase), to label adoption counts.
    pub(crate) known_ids: Vec<String>,
    /// Per [`Role::index`]: the health counters of the update playing that role.
    counters: [Option<Arc<UpdateCounters>>; 3],
    /// The rollout on top of the base, if any.
    pub(crate) rollout: Option<RolloutInfo>,
}

/// A rendered response with its status and headers already in `http` types, so a request
/// only clones them.
#[derive(Debug)]
pub(crate) struct WireResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl LiveChannel {
    /// Renders a release and attaches the health counters of its updates.
    pub(crate) fn new(
        release: ChannelRelease,
        rollout: Option<RolloutInfo>,
        health: &HealthBook,
    ) -> Result<Self, otago_core::Error> {
        let prepared = PreparedUpdates::new(release, &AssetRequestHeaders::new())?;
        let wire = prepared
            .responses()
            .map(|rendered| {
                let invalid = |what: String| otago_core::Error::InvalidManifest {
                    reason: format!("a rendered response has {what}"),
                };
                let status = StatusCode::from_u16(rendered.status())
                    .map_err(|_| invalid(format!("status {}", rendered.status())))?;
                let mut headers = HeaderMap::with_capacity(rendered.headers().len());
                for (name, value) in rendered.headers() {
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| invalid(format!("an invalid header name `{name}`")))?;
                    let value = HeaderValue::from_str(value)
                        .map_err(|_| invalid(format!("an invalid `{name}` value")))?;
                    headers.append(name, value);
                }
                Ok(WireResponse {
                    status,
                    headers,
                    body: rendered.body().clone(),
                })
            })
            .collect::<Result<_, otago_core::Error>>()?;
        let mut counters = [None, None, None];
        let mut known_ids = Vec::new();
        for (role, update) in prepared.updates() {
            let id = update.id.to_string();
            counters[role.index()] = Some(health.counters(&id));
            known_ids.push(id);
        }
        Ok(Self {
            prepared,
            wire,
            known_ids,
            counters,
            rollout,
        })
    }

    /// The health counters of the update playing `role`.
    pub(crate) fn counters(&self, role: Role) -> Option<&Arc<UpdateCounters>> {
        self.counters[role.index()].as_ref()
    }

    /// The release served.
    pub(crate) fn release(&self) -> &ChannelRelease {
        self.prepared.release()
    }
}

static EMPTY: LazyLock<Arc<LiveChannel>> = LazyLock::new(|| {
    LiveChannel::new(ChannelRelease::default(), None, &HealthBook::default())
        .map(Arc::new)
        .unwrap_or_else(|err| unreachable!("an empty channel always prepares: {err}"))
});

/// The channels of one project, by platform and runtime version.
#[derive(Debug, Default)]
struct ProjectChannels {
    ios: HashMap<String, Arc<LiveChannel>>,
    android: HashMap<String, Arc<LiveChannel>>,
}

impl ProjectChannels {
    fn platform(&self, platform: Platform) -> &HashMap<String, Arc<LiveChannel>> {
        match platform {
            Platform::Ios => &self.ios,
            Platform::Android => &self.android,
        }
    }

    fn platform_mut(&mut self, platform: Platform) -> &mut HashMap<String, Arc<LiveChannel>> {
        match platform {
            Platform::Ios => &mut self.ios,
            Platform::Android => &mut self.android,
        }
    }
}

/// The in-memory map (project, platform, runtime version) → prepared answers.
#[derive(Debug, Default)]
pub(crate) struct LiveMap {
    projects: RwLock<HashMap<String, ProjectChannels>>,
}

/// A stored update (or standby) as otago-core sees it.
fn published(
    kind: GroupKind,
    id: &str,
    body: Option<&Bytes>,
    signature: Option<&str>,
) -> Result<PublishedUpdate, otago_core::Error> {
    let body = body.cloned().unwrap_or_default();
    let signature = signature.map(StoredSignature::parse).transpose()?;
    let id: UpdateId = id.parse()?;
    let kind = match kind {
        GroupKind::Update => UpdateKind::Manifest,
        GroupKind::RollBackToEmbedded => UpdateKind::RollBackToEmbedded,
    };
    standby_update(kind, id, body, signature)
}

fn served(entry: &ServedUpdate) -> Result<PublishedUpdate, otago_core::Error> {
    let update = &entry.update;
    published(
        entry.group.kind,
        &update.id,
        update.body.as_ref(),
        update.signature.as_deref(),
    )
}

fn standby(record: &StandbyRecord) -> Result<PublishedUpdate, otago_core::Error> {
    published(
        record.kind,
        &record.id,
        record.body.as_ref(),
        record.signature.as_deref(),
    )
}

/// The release a stored record describes, with its rollout's group.
pub(crate) fn release_of(
    record: &ReleaseRecord,
) -> Result<(ChannelRelease, Option<RolloutInfo>), otago_core::Error> {
    let base = record.base.as_ref().map(served).transpose()?;
    let base_aliases = record
        .base_aliases
        .iter()
        .map(|id| id.parse())
        .collect::<Result<_, _>>()?;
    let Some(entry) = &record.rollout else {
        return Ok((
            ChannelRelease {
                base,
                base_aliases,
                rollout: None,
            },
            None,
        ));
    };
    let standby_record =
        entry
            .update
            .standby
            .as_ref()
            .ok_or_else(|| otago_core::Error::InvalidManifest {
                reason: format!("rollout update {} has no standby revert", entry.update.id),
            })?;
    let release = ChannelRelease {
        base,
        base_aliases,
        rollout: Some(Rollout {
            target: served(entry)?,
            percentage: entry.group.rollout_percentage,
            standby: standby(standby_record)?,
            reverted: entry.group.state == GroupState::Reverted,
        }),
    };
    Ok((release, RolloutInfo::of(&entry.group)?))
}

/// Builds a channel's answers from a stored record (`None` when it serves nothing).
pub(crate) fn prepare(
    record: &ReleaseRecord,
    health: &HealthBook,
) -> Result<Option<LiveChannel>, otago_core::Error> {
    if record.base.is_none() && record.rollout.is_none() {
        return Ok(None);
    }
    let (release, rollout) = release_of(record)?;
    LiveChannel::new(release, rollout, health).map(Some)
}

impl LiveMap {
    /// The answers of a channel: `None` for an unknown project, an empty channel when the
    /// project has nothing for this platform and runtime version.
    pub(crate) fn channel(
        &self,
        project_ref: &str,
        platform: Platform,
        runtime_version: &str,
    ) -> Option<Arc<LiveChannel>> {
        let projects = self.read();
        let channels = projects.get(project_ref)?;
        Some(
            channels
                .platform(platform)
                .get(runtime_version)
                .map_or_else(|| Arc::clone(&EMPTY), Arc::clone),
        )
    }

    /// Every channel with its key.
    pub(crate) fn all(&self) -> Vec<(ChannelKey, Arc<LiveChannel>)> {
        let projects = self.read();
        let mut all = Vec::new();
        for (project_ref, channels) in projects.iter() {
            for platform in Platform::ALL {
                for (runtime_version, channel) in channels.platform(platform) {
                    all.push((
                        ChannelKey {
                            project_ref: project_ref.clone(),
                            platform,
                            runtime_version: runtime_version.clone(),
                        },
                        Arc::clone(channel),
                    ));
                }
            }
        }
        all
    }

    /// Every project's ref.
    pub(crate) fn project_refs(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Registers a project (with no channels yet).
    pub(crate) fn add_project(&self, project_ref: &str) {
        self.write().entry(project_ref.to_owned()).or_default();
    }

    /// Forgets a project and its channels.
    pub(crate) fn remove_project(&self, project_ref: &str) {
        self.write().remove(project_ref);
    }

    /// Installs channels built beforehand, all at once.
    pub(crate) fn install(&self, channels: Vec<(ChannelKey, Option<Arc<LiveChannel>>)>) {
        let mut projects = self.write();
        for (key, channel) in channels {
            let Some(project) = projects.get_mut(&key.project_ref) else {
                continue;
            };
            let by_version = project.platform_mut(key.platform);
            match channel {
                Some(channel) => by_version.insert(key.runtime_version, channel),
                None => by_version.remove(&key.runtime_version),
            };
        }
    }

    /// Loads every project and channel from the store, and the health counts of their updates.
    pub(crate) async fn load(&self, meta: &dyn MetaStore, health: &HealthBook) -> StoreResult<()> {
        let projects = meta.projects().await?;
        let known: HashSet<&str> = projects.iter().map(|p| p.r#ref.as_str()).collect();
        for project in &known {
            self.add_project(project);
        }
        let mut built = Vec::new();
        for key in meta.channels().await? {
            if !known.contains(key.project_ref.as_str()) {
                continue;
            }
            let record = meta.release(&key).await?;
            match prepare(&record, health) {
                Ok(channel) => built.push((key, channel.map(Arc::new))),
                // One bad channel must not keep every other project offline; `check` names it.
                Err(err) => {
                    tracing::error!(project = %key.project_ref, platform = %key.platform, runtime_version = %key.runtime_version, error = %err, "cannot prepare the answers of a channel");
                }
            }
        }
        let ids: Vec<String> = built
            .iter()
            .filter_map(|(_, channel)| channel.as_ref())
            .flat_map(|channel| channel.known_ids.iter().cloned())
            .collect();
        health.load(meta, &ids).await?;
        self.install(built);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, ProjectChannels>> {
        self.projects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, ProjectChannels>> {
        self.projects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
