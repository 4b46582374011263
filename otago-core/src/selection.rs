//! Choosing what to answer: the published updates of one (project, platform, runtime
//! version), the newest of which wins, with percentage rollouts keyed on `EAS-Client-ID`.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::{
    Directive, Error, Manifest, ManifestRequest, ProtocolVersion, Result, SignatureHeader,
    Timestamp, UpdateId,
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
    /// Share of devices (0–100) that get this update while it is the newest; the others get
    /// the next newest. Ignored for all but the newest update.
    pub rollout_percentage: u8,
    /// What is served.
    pub body: SignedBody,
}

impl PublishedUpdate {
    /// A manifest update from the manifest bytes the deployer built (and maybe signed),
    /// fully rolled out; id and `createdAt` are read from the bytes.
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
            rollout_percentage: 100,
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
                rollout_percentage: 100,
                body: SignedBody { bytes, signature },
            }),
            Directive::NoUpdateAvailable => Err(Error::InvalidManifest {
                reason: "a published directive must be `rollBackToEmbedded`; `noUpdateAvailable` is the server's own answer".to_owned(),
            }),
        }
    }

    /// The same update rolled out to `percentage` percent of devices.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] when `percentage` is over 100.
    pub fn with_rollout_percentage(mut self, percentage: u8) -> Result<Self> {
        if percentage > 100 {
            return Err(Error::InvalidManifest {
                reason: format!("rollout percentage {percentage} is over 100; use 0 to 100"),
            });
        }
        self.rollout_percentage = percentage;
        Ok(self)
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
    let digest = Sha256::new()
        .chain_update(client_id.as_bytes())
        .chain_update(b":")
        .chain_update(update_id.to_string().as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The remainder is below 100, so the conversion cannot fail.
    u8::try_from(u64::from_be_bytes(first) % 100).unwrap_or(0)
}

/// Which of the two candidates a decision refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Newest,
    Control,
}

/// A decision in terms of [`Slot`]s, so that prepared structures can find their renderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Manifest(Slot),
    NoUpdateAvailable,
    RollBackToEmbedded(Slot),
    NoUpdate,
}

/// The decision given the newest update and the one before it (the rollout control).
pub(crate) fn decide_top_two(
    newest: Option<&PublishedUpdate>,
    control: Option<&PublishedUpdate>,
    request: &ManifestRequest,
) -> Result<Outcome> {
    let (slot, chosen) = match newest {
        Some(newest) if in_rollout(newest, request) => (Slot::Newest, Some(newest)),
        _ => (Slot::Control, control),
    };
    let v1 = request.protocol_version == ProtocolVersion::V1;
    let current_is = |id: &str| {
        request
            .current_update_id
            .as_deref()
            .is_some_and(|current| current.eq_ignore_ascii_case(id))
    };
    match chosen {
        None if v1 => Ok(Outcome::NoUpdate),
        Some(update) if update.kind == UpdateKind::Manifest => {
            if v1 && current_is(&update.id.to_string()) {
                Ok(Outcome::NoUpdateAvailable)
            } else {
                Ok(Outcome::Manifest(slot))
            }
        }
        Some(_) if v1 => match request.embedded_update_id.as_deref() {
            None => Ok(Outcome::NoUpdate),
            Some(embedded) if current_is(embedded) => Ok(Outcome::NoUpdateAvailable),
            Some(_) => Ok(Outcome::RollBackToEmbedded(slot)),
        },
        _ => Err(Error::NoUpdate),
    }
}

fn in_rollout(update: &PublishedUpdate, request: &ManifestRequest) -> bool {
    update.rollout_percentage >= 100
        || request.client_id.as_deref().is_some_and(|client_id| {
            rollout_bucket(client_id, update.id) < update.rollout_percentage
        })
}

/// The newest-first order: later `created_at` first, ties broken by the larger id.
pub(crate) fn newest_first(a: &PublishedUpdate, b: &PublishedUpdate) -> std::cmp::Ordering {
    (b.created_at, b.id).cmp(&(a.created_at, a.id))
}

/// Decides what `request` gets from `updates`, the published updates of one (project,
/// platform, runtime version), in any order.
///
/// The newest update wins. While it is rolled out to `p` < 100 percent, a device gets it iff
/// it sent `EAS-Client-ID` and [`rollout_bucket`] is below `p`; every other device gets the
/// next newest update. A v1 client that already runs the chosen manifest gets
/// [`Decision::NoUpdateAvailable`]; a rollback applies only to v1 clients that sent
/// `expo-embedded-update-id` (and is no-update-available if they run it already).
///
/// # Errors
/// [`Error::NoUpdate`] (404) for a v0 client when there is no manifest to serve: v0 has no
/// directives and no 204.
pub fn decide<'a>(
    updates: &'a [PublishedUpdate],
    request: &ManifestRequest,
) -> Result<Decision<'a>> {
    let mut newest: Option<&PublishedUpdate> = None;
    let mut control: Option<&PublishedUpdate> = None;
    for update in updates {
        if newest.is_none_or(|n| newest_first(update, n).is_lt()) {
            control = newest;
            newest = Some(update);
        } else if control.is_none_or(|c| newest_first(update, c).is_lt()) {
            control = Some(update);
        }
    }
    let pick = |slot| match slot {
        Slot::Newest => newest,
        Slot::Control => control,
    };
    Ok(match decide_top_two(newest, control, request)? {
        Outcome::Manifest(slot) => pick(slot).map_or(Decision::NoUpdate, Decision::Manifest),
        Outcome::RollBackToEmbedded(slot) => {
            pick(slot).map_or(Decision::NoUpdate, Decision::RollBackToEmbedded)
        }
        Outcome::NoUpdateAvailable => Decision::NoUpdateAvailable,
        Outcome::NoUpdate => Decision::NoUpdate,
    })
}

#[cfg(test)]
pub(crate) mod tests;
