//! The answers devices get, held in memory: for each project, platform and runtime version the
//! otago-core [`PreparedUpdates`] with every response rendered at publish time.
//!
//! Requests only read this map (an `RwLock` held for a pointer copy); publishes, rollout changes
//! and reverts rebuild the affected entries from the store, one rebuild at a time.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, RwLock};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
// foldhash (hashbrown's default) rather than SipHash: one lookup per request, and the keys
// come from authenticated publishers, not from devices.
use hashbrown::HashMap;
use otago_core::{
    AssetRequestHeaders, Platform, PreparedUpdates, PublishedUpdate, StoredSignature, UpdateId,
};

use crate::store::{ChannelKey, GroupKind, HistoryEntry, MetaStore, StoreError, StoreResult};

/// How many of a channel's newest updates are prepared: the newest and the rollout control.
const PREPARED_DEPTH: usize = 2;

/// The prepared answers of one project, platform and runtime version.
#[derive(Debug)]
pub(crate) struct LiveChannel {
    /// Every response, rendered.
    pub(crate) prepared: PreparedUpdates,
    /// The same responses as HTTP parts, by [`otago_core::RenderedResponse::index`].
    pub(crate) wire: Vec<WireResponse>,
    /// Ids of the prepared updates (lowercase), to label adoption counts.
    pub(crate) known_ids: Vec<String>,
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
    fn new(prepared: PreparedUpdates, known_ids: Vec<String>) -> Result<Self, otago_core::Error> {
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
        Ok(Self {
            prepared,
            wire,
            known_ids,
        })
    }
}

static EMPTY: LazyLock<Arc<LiveChannel>> = LazyLock::new(|| {
    PreparedUpdates::new(Vec::new(), &AssetRequestHeaders::new())
        .and_then(|prepared| LiveChannel::new(prepared, Vec::new()))
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
    rebuild: tokio::sync::Mutex<()>,
}

/// Turns a stored history entry into what otago-core selects from.
fn published(entry: &HistoryEntry) -> Result<PublishedUpdate, otago_core::Error> {
    let update = &entry.update;
    let body = update.body.clone().unwrap_or_default();
    let signature = update
        .signature
        .as_deref()
        .map(StoredSignature::parse)
        .transpose()?;
    let published = match entry.kind {
        GroupKind::Update => PublishedUpdate::manifest(body, signature)?,
        GroupKind::RollBackToEmbedded => {
            let id: UpdateId = update.id.parse()?;
            PublishedUpdate::roll_back_to_embedded(id, body, signature)?
        }
    };
    published.with_rollout_percentage(entry.rollout_percentage)
}

/// Prepares the newest entries of a history (newest first).
pub(crate) fn prepare(history: &[HistoryEntry]) -> Result<LiveChannel, otago_core::Error> {
    let newest = &history[..history.len().min(PREPARED_DEPTH)];
    let updates = newest
        .iter()
        .map(published)
        .collect::<Result<Vec<_>, _>>()?;
    let known_ids = newest
        .iter()
        .map(|entry| entry.update.id.to_ascii_lowercase())
        .collect();
    LiveChannel::new(
        PreparedUpdates::new(updates, &AssetRequestHeaders::new())?,
        known_ids,
    )
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

    /// Registers a project (with no channels yet).
    pub(crate) fn add_project(&self, project_ref: &str) {
        self.write().entry(project_ref.to_owned()).or_default();
    }

    /// Forgets a project and its channels.
    pub(crate) fn remove_project(&self, project_ref: &str) {
        self.write().remove(project_ref);
    }

    /// Rebuilds the answers of `keys` from the store. Every key is tried; the first failure is
    /// returned (and the failing channel keeps its previous answers).
    pub(crate) async fn refresh(
        &self,
        meta: &dyn MetaStore,
        keys: &[ChannelKey],
    ) -> StoreResult<()> {
        let _one_at_a_time = self.rebuild.lock().await;
        let mut first_error = None;
        for key in keys {
            match Self::build(meta, key).await {
                Ok(channel) => self.install(key, channel),
                Err(err) => {
                    tracing::error!(project = %key.project_ref, platform = %key.platform, runtime_version = %key.runtime_version, error = %err, "cannot prepare the answers of a channel");
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn build(
        meta: &dyn MetaStore,
        key: &ChannelKey,
    ) -> StoreResult<Option<Arc<LiveChannel>>> {
        let history = meta.history(key).await?;
        if history.is_empty() {
            return Ok(None);
        }
        let prepared = prepare(&history).map_err(|err| {
            StoreError::backend(format!(
                "stored updates of {}/{}/{} do not prepare: {err}",
                key.project_ref, key.platform, key.runtime_version
            ))
        })?;
        Ok(Some(Arc::new(prepared)))
    }

    fn install(&self, key: &ChannelKey, channel: Option<Arc<LiveChannel>>) {
        let mut projects = self.write();
        let Some(channels) = projects.get_mut(&key.project_ref) else {
            return;
        };
        let by_version = channels.platform_mut(key.platform);
        match channel {
            Some(channel) => by_version.insert(key.runtime_version.clone(), channel),
            None => by_version.remove(&key.runtime_version),
        };
    }

    /// Loads every project and channel from the store.
    pub(crate) async fn load(&self, meta: &dyn MetaStore) -> StoreResult<()> {
        let projects = meta.projects().await?;
        let known: HashSet<&str> = projects.iter().map(|p| p.r#ref.as_str()).collect();
        for project in &known {
            self.add_project(project);
        }
        let channels: Vec<ChannelKey> = meta
            .channels()
            .await?
            .into_iter()
            .filter(|key| known.contains(key.project_ref.as_str()))
            .collect();
        if let Err(err) = self.refresh(meta, &channels).await {
            // One bad channel must not keep every other project offline; `check` names it.
            tracing::error!(error = %err, "some published updates could not be loaded");
        }
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
