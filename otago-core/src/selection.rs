//! Choosing what to answer from a channel's [`ChannelRelease`]: the base, a rollout's target
//! for the devices whose `EAS-Client-ID` falls in its percentage, a reverted rollout's standby
//! for the devices that took its target, never an update the device failed to launch.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::{
    ChannelRelease, Directive, Error, Manifest, ManifestRequest, ProtocolVersion, Result, Role,
    SignatureHeader, Timestamp, UpdateId,
};

/// What a published update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdateKind {
    /// A manifest: clients download and run it.
    Manifest,
    /// A `rollBackToEmbedded` directive: clients go back to the update in their binary.
    RollBackToEmbedded,
}

/// A stored `expo-signature` value (`sig="…", keyid="…", alg="rsa-v1_5-sha256"`) and its key id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredSignature {
    header_value: String,
    keyid: String,
}

impl StoredSignature {
    /// Checks an `expo-signature` value as the deployer produced it (see
    /// [`SignatureHeader::parse`]) and keeps it byte for byte. The key id defaults to `root`,
    /// as clients assume.
    ///
    /// # Errors
    /// [`Error::BadHeader`] (400) when the value is not a valid `expo-signature`.
    pub fn parse(header_value: &str) -> Result<Self> {
        let header_value = header_value.trim_matches([' ', '\t']);
        let parsed = SignatureHeader::parse(header_value)?;
        Ok(Self {
            header_value: header_value.to_owned(),
            keyid: parsed.keyid().to_owned(),
        })
    }

    /// The `expo-signature` value, exactly as given.
    #[must_use]
    pub fn header_value(&self) -> &str {
        &self.header_value
    }

    /// The key id the body was signed with.
    #[must_use]
    pub fn keyid(&self) -> &str {
        &self.keyid
    }
}

/// The exact bytes served for an update (manifest or directive JSON) and their signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBody {
    /// The body, byte for byte as built and signed.
    pub bytes: Bytes,
    /// The `expo-signature` over `bytes`, if the update was signed.
    pub signature: Option<StoredSignature>,
}

/// One published update of a (project, platform, runtime version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedUpdate {
    /// The update's id (for a rollback, an id the publisher gives it).
    pub id: UpdateId,
    /// When it was published; the newest wins. For a rollback, its `commitTime`.
    pub created_at: Timestamp,
    /// Manifest or rollback directive.
    pub kind: UpdateKind,
    /// What is served.
    pub body: SignedBody,
}

impl PublishedUpdate {
    /// A manifest update from the manifest bytes the deployer built (and maybe signed); id
    /// and `createdAt` are read from the bytes.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] (and the like) when the bytes are not a valid manifest.
    pub fn manifest(bytes: impl Into<Bytes>, signature: Option<StoredSignature>) -> Result<Self> {
        let bytes = bytes.into();
        let manifest = Manifest::parse(&bytes)?;
        Ok(Self {
            id: manifest.id,
            created_at: manifest.created_at,
            kind: UpdateKind::Manifest,
            body: SignedBody { bytes, signature },
        })
    }

    /// A rollback from `rollBackToEmbedded` directive bytes (and maybe their signature);
    /// `created_at` is the directive's `commitTime`.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] when the bytes are not a `rollBackToEmbedded` directive.
    pub fn roll_back_to_embedded(
        id: UpdateId,
        bytes: impl Into<Bytes>,
        signature: Option<StoredSignature>,
    ) -> Result<Self> {
        let bytes = bytes.into();
        match Directive::parse(&bytes)? {
            Directive::RollBackToEmbedded { parameters } => Ok(Self {
                id,
                created_at: parameters.commit_time,
                kind: UpdateKind::RollBackToEmbedded,
                body: SignedBody { bytes, signature },
            }),
            Directive::NoUpdateAvailable => Err(Error::InvalidManifest {
                reason: "a published directive must be `rollBackToEmbedded`; `noUpdateAvailable` is the server's own answer".to_owned(),
            }),
        }
    }
}

/// What kind of answer a request got (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    /// A manifest was served.
    Manifest,
    /// The client already runs the update it would get.
    NoUpdateAvailable,
    /// The client was told to roll back to its embedded update.
    RollBackToEmbedded,
    /// Nothing applies (v1 clients get 204).
    NoUpdate,
}

impl DecisionKind {
    /// A stable lowercase-camel name: `manifest`, `noUpdateAvailable`, `rollBackToEmbedded`, `noUpdate`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::NoUpdateAvailable => "noUpdateAvailable",
            Self::RollBackToEmbedded => "rollBackToEmbedded",
            Self::NoUpdate => "noUpdate",
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Serve this manifest update.
    Manifest(&'a PublishedUpdate),
    /// The client already runs the chosen manifest (v1 only).
    NoUpdateAvailable,
    /// Send this rollback directive (v1 with an embedded update only).
    RollBackToEmbedded(&'a PublishedUpdate),
    /// Nothing applies (v1 only; v0 gets [`Error::NoUpdate`]).
    NoUpdate,
}

impl Decision<'_> {
    /// The kind of this decision.
    #[must_use]
    pub fn kind(&self) -> DecisionKind {
        match self {
            Self::Manifest(_) => DecisionKind::Manifest,
            Self::NoUpdateAvailable => DecisionKind::NoUpdateAvailable,
            Self::RollBackToEmbedded(_) => DecisionKind::RollBackToEmbedded,
            Self::NoUpdate => DecisionKind::NoUpdate,
        }
    }
}

/// The rollout bucket (0–99) of a device for an update: the first 8 bytes of
/// SHA-256(`client_id` + `:` + lowercase `update_id`) as a big-endian integer, mod 100.
///
/// A device is in a rollout at `p` percent iff its bucket is below `p`, so it stays in as
/// `p` grows.
#[must_use]
pub fn rollout_bucket(client_id: &str, update_id: UpdateId) -> u8 {
    bucket(client_id, &update_id.to_string())
}

/// [`rollout_bucket`] of an id already written in lowercase.
fn bucket(client_id: &str, update_id: &str) -> u8 {
    let digest = Sha256::new()
        .chain_update(client_id.as_bytes())
        .chain_update(b":")
        .chain_update(update_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below 100, so the conversion cannot fail.
    u8::try_from(u64::from_be_bytes(first) % 100).unwrap_or(0)
}

/// A decision in terms of [`Role`]s, so that prepared structures can find their renderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Manifest(Role),
    NoUpdateAvailable,
    RollBackToEmbedded(Role),
    NoUpdate,
}

/// What selection needs of a release: per role the lowercase id and kind, the base's
/// aliases, the rollout's percentage and state. Borrowed, so answering allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) updates: [Option<(&'a str, UpdateKind)>; 3],
    pub(crate) base_aliases: &'a [String],
    pub(crate) percentage: u8,
    pub(crate) reverted: bool,
}

impl View<'_> {
    fn id(&self, role: Role) -> Option<&str> {
        self.updates[role.index()].map(|(id, _)| id)
    }
}

/// The decision for `request` (see [`decide`]).
pub(crate) fn decide_role(view: &View<'_>, request: &ManifestRequest) -> Result<Outcome> {
    let current = request.current_update_id.as_deref();
    // Ids arrive lowercased from `ManifestRequest::parse`; compared without case all the same.
    let is_current = |id: Option<&str>| {
        id.zip(current)
            .is_some_and(|(id, current)| id.eq_ignore_ascii_case(current))
    };
    let failed = |role: Role| {
        view.id(role).is_some_and(|id| {
            request
                .recent_failed_update_ids
                .iter()
                .any(|f| f.eq_ignore_ascii_case(id))
        })
    };
    let has_rollout = view.updates[Role::Target.index()].is_some();
    let preference: &[Role] = if !has_rollout {
        &[Role::Base]
    } else if view.reverted {
        if is_current(view.id(Role::Target)) {
            &[Role::Standby, Role::Base]
        } else {
            &[Role::Base]
        }
    } else {
        let in_rollout = request.client_id.as_deref().is_some_and(|client| {
            view.id(Role::Target)
                .is_some_and(|target| bucket(client, target) < view.percentage)
        });
        if in_rollout {
            &[Role::Target, Role::Base]
        } else {
            &[Role::Base]
        }
    };
    let chosen = preference
        .iter()
        .copied()
        .find(|&role| view.updates[role.index()].is_some() && !failed(role));
    let v1 = request.protocol_version == ProtocolVersion::V1;
    let Some(role) = chosen else {
        return if v1 {
            Ok(Outcome::NoUpdate)
        } else {
            Err(Error::NoUpdate)
        };
    };
    let on_it = is_current(view.id(role))
        || (role == Role::Base
            && (view
                .base_aliases
                .iter()
                .any(|alias| is_current(Some(alias)))
                || (view.reverted && is_current(view.id(Role::Standby)))));
    match view.updates[role.index()].map(|(_, kind)| kind) {
        Some(UpdateKind::Manifest) if v1 && on_it => Ok(Outcome::NoUpdateAvailable),
        Some(UpdateKind::Manifest) => Ok(Outcome::Manifest(role)),
        _ if v1 => match request.embedded_update_id.as_deref() {
            None => Ok(Outcome::NoUpdate),
            Some(embedded) if is_current(Some(embedded)) => Ok(Outcome::NoUpdateAvailable),
            Some(_) => Ok(Outcome::RollBackToEmbedded(role)),
        },
        _ => Err(Error::RollbackNeedsProtocolV1),
    }
}

/// Decides what `request` gets from a channel's release.
///
/// Without a rollout every device gets the base. During a rollout at `p` percent, a device
/// gets the target iff it sent `EAS-Client-ID` and its [`rollout_bucket`] for the target is
/// below `p`; every other device gets the base (the control). After a revert, devices that
/// run the target get the standby, the others the base. A device never gets an update listed
/// in its `expo-recent-failed-update-ids`: it gets the next eligible one (the base), or no
/// update. A v1 client that already runs the chosen manifest (or, for the base, one of its
/// aliases or the active standby) gets [`Decision::NoUpdateAvailable`]; a rollback applies
/// only to v1 clients that sent `expo-embedded-update-id` (and is no-update-available if
/// they run it already).
///
/// # Errors
/// [`Error::NoUpdate`] (404) for a v0 client when there is no manifest to serve: v0 has no
/// directives and no 204; [`Error::RollbackNeedsProtocolV1`] (406) for a v0 client when the
/// answer due is a rollback.
pub fn decide<'a>(release: &'a ChannelRelease, request: &ManifestRequest) -> Result<Decision<'a>> {
    let ids: Vec<(Role, String, UpdateKind)> = release
        .updates()
        .map(|(role, update)| (role, update.id.to_string(), update.kind))
        .collect();
    let aliases: Vec<String> = release
        .base_aliases
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut updates = [None; 3];
    for (role, id, kind) in &ids {
        updates[role.index()] = Some((id.as_str(), *kind));
    }
    let view = View {
        updates,
        base_aliases: &aliases,
        percentage: release.rollout.as_ref().map_or(0, |r| r.percentage),
        reverted: release.rollout.as_ref().is_some_and(|r| r.reverted),
    };
    let update = |role| release.get(role).ok_or(Error::NoUpdate);
    Ok(match decide_role(&view, request)? {
        Outcome::Manifest(role) => Decision::Manifest(update(role)?),
        Outcome::RollBackToEmbedded(role) => Decision::RollBackToEmbedded(update(role)?),
        Outcome::NoUpdateAvailable => Decision::NoUpdateAvailable,
        Outcome::NoUpdate => Decision::NoUpdate,
    })
}

#[cfg(test)]
pub(crate) mod tests;
