//! Responses rendered once, at publish time: [`PreparedUpdates`] holds, for every published
//! update, each variant a request may need (multipart or single JSON body, protocol 0 or 1),
//! so that answering a request only chooses one. No JSON encoding, signing or hashing
//! happens per request (beyond the rollout bucket of the `EAS-Client-ID`).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::selection::{Outcome, View, decide_role};
use crate::{
    ChannelRelease, DecisionKind, Directive, Error, ExpectSignature, Manifest, ManifestRequest,
    ProtocolVersion, PublishedUpdate, ResponseFormat, Result, Role, UpdateKind,
};

mod multipart;

/// Extra request headers clients send when downloading an asset: asset key → header name →
/// value. Sent in the `extensions` part as `assetRequestHeaders`.
pub type AssetRequestHeaders = BTreeMap<String, BTreeMap<String, String>>;

/// The headers every manifest-endpoint response carries (error responses included):
/// `expo-protocol-version` (bare `0` or `1`), `expo-sfv-version: 0` and
/// `cache-control: private, max-age=0`.
#[must_use]
pub fn common_headers(version: ProtocolVersion) -> [(&'static str, &'static str); 3] {
    [
        ("expo-protocol-version", version.as_str()),
        ("expo-sfv-version", "0"),
        ("cache-control", "private, max-age=0"),
    ]
}

/// A response rendered ahead of time: status, headers in order, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedResponse {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// Position in [`PreparedUpdates::responses`] (0 until numbered there).
    index: usize,
}

impl RenderedResponse {
    fn new(
        status: u16,
        version: ProtocolVersion,
        content_type: Option<String>,
        signature: Option<&str>,
        body: Bytes,
    ) -> Self {
        let mut headers: Vec<(&'static str, String)> = common_headers(version)
            .iter()
            .map(|&(name, value)| (name, value.to_owned()))
            .collect();
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        if let Some(signature) = signature {
            headers.push(("expo-signature", signature.to_owned()));
        }
        Self {
            status,
            headers,
            body,
            index: 0,
        }
    }

    fn multipart(version: ProtocolVersion, rendered: &multipart::Rendered) -> Self {
        let content_type = format!("multipart/mixed; boundary={}", rendered.boundary);
        Self::new(
            200,
            version,
            Some(content_type),
            None,
            rendered.body.clone(),
        )
    }

    /// The HTTP status: 200, or 204 for "no update" to a v1 client.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, lowercase names, in the order to send them.
    #[must_use]
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The value of header `name` (case-insensitive), if present.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Its position among [`PreparedUpdates::responses`]: a server can keep its own
    /// transport-ready copy of each response (say, a header map) in a list and find it with
    /// this, with no lookup per request.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// The body (empty for 204); cloning it is cheap.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// Renderings of one protocol version, indexed by [`ProtocolVersion`].
type PerVersion = [RenderedResponse; 2];

fn version_index(version: ProtocolVersion) -> usize {
    match version {
        ProtocolVersion::V0 => 0,
        ProtocolVersion::V1 => 1,
    }
}

#[derive(Debug, Clone)]
struct ManifestRenderings {
    multipart: PerVersion,
    expo_json: PerVersion,
    json: PerVersion,
}

#[derive(Debug, Clone)]
enum Renderings {
    Manifest(Box<ManifestRenderings>),
    /// Directives are multipart only and v1 only.
    RollBackToEmbedded {
        multipart_v1: RenderedResponse,
    },
}

impl Renderings {
    fn iter(&self) -> impl Iterator<Item = &RenderedResponse> {
        let (manifest, directive) = match self {
            Self::Manifest(m) => (Some(m), None),
            Self::RollBackToEmbedded { multipart_v1 } => (None, Some(multipart_v1)),
        };
        manifest
            .into_iter()
            .flat_map(|m| m.multipart.iter().chain(&m.expo_json).chain(&m.json))
            .chain(directive)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut RenderedResponse> {
        let (manifest, directive) = match self {
            Self::Manifest(m) => (Some(m), None),
            Self::RollBackToEmbedded { multipart_v1 } => (None, Some(multipart_v1)),
        };
        manifest
            .into_iter()
            .flat_map(|m| {
                m.multipart
                    .iter_mut()
                    .chain(&mut m.expo_json)
                    .chain(&mut m.json)
            })
            .chain(directive)
    }
}

/// The answer to one request: what was decided and the pre-rendered response to send.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// What was decided (for metrics and logs).
    pub kind: DecisionKind,
    /// The update served, for [`DecisionKind::Manifest`] and [`DecisionKind::RollBackToEmbedded`].
    pub update: Option<&'a PublishedUpdate>,
    /// The part the served update plays in the release.
    pub role: Option<Role>,
    /// The response to write out as is (without its body for `HEAD`).
    pub response: &'a RenderedResponse,
}

/// The release of one (project, platform, runtime version), with every response it can
/// produce rendered.
#[derive(Debug, Clone)]
pub struct PreparedUpdates {
    release: ChannelRelease,
    /// Per [`Role::index`]: the renderings of the update playing that role.
    renderings: [Option<Renderings>; 3],
    /// Per [`Role::index`]: the lowercase id and kind of the update playing that role.
    ids: [Option<(String, UpdateKind)>; 3],
    base_aliases: Vec<String>,
    runtime_version: Option<String>,
    no_update_available: RenderedResponse,
    no_content: RenderedResponse,
}

fn manifest_renderings(
    update: &PublishedUpdate,
    manifest: &Manifest,
    headers: &AssetRequestHeaders,
) -> Result<Renderings> {
    let for_this_manifest: BTreeMap<&str, &BTreeMap<String, String>> = manifest
        .all_assets()
        .filter_map(|asset| {
            headers
                .get_key_value(&asset.key)
                .map(|(key, value)| (key.as_str(), value))
        })
        .collect();
    let extensions =
        serde_json::to_vec(&serde_json::json!({ "assetRequestHeaders": for_this_manifest }))
            .map_err(|err| Error::InvalidManifest {
                reason: format!("cannot render extensions: {err}"),
            })?;
    let signature = update.body.signature.as_ref().map(|s| s.header_value());
    let rendered = multipart::render(&[
        multipart::Part {
            name: "manifest",
            signature,
            body: &update.body.bytes,
        },
        multipart::Part {
            name: "extensions",
            signature: None,
            body: &extensions,
        },
    ])?;
    let single = |format: ResponseFormat| {
        [ProtocolVersion::V0, ProtocolVersion::V1].map(|version| {
            RenderedResponse::new(
                200,
                version,
                Some(format.media_type().to_owned()),
                signature,
                update.body.bytes.clone(),
            )
        })
    };
    Ok(Renderings::Manifest(Box::new(ManifestRenderings {
        multipart: [ProtocolVersion::V0, ProtocolVersion::V1]
            .map(|version| RenderedResponse::multipart(version, &rendered)),
        expo_json: single(ResponseFormat::ExpoJson),
        json: single(ResponseFormat::Json),
    })))
}

fn check_asset_request_headers(headers: &AssetRequestHeaders) -> Result<()> {
    let is_token = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    for (key, asset_headers) in headers {
        for (name, value) in asset_headers {
            if !is_token(name) || value.chars().any(char::is_control) {
                return Err(Error::InvalidManifest {
                    reason: format!(
                        "assetRequestHeaders for `{}`: `{}` is not a valid header; use a token name and a value without control characters",
                        key.escape_debug(),
                        name.escape_debug()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn directive_renderings(update: &PublishedUpdate) -> Result<Renderings> {
    let Directive::RollBackToEmbedded { parameters } = Directive::parse(&update.body.bytes)? else {
        return Err(Error::InvalidManifest {
            reason: format!(
                "update {}: the body is not a rollBackToEmbedded directive",
                update.id
            ),
        });
    };
    if parameters.commit_time != update.created_at {
        return Err(Error::InvalidManifest {
            reason: format!(
                "update {}: commitTime differs from the update's created_at",
                update.id
            ),
        });
    }
    let signature = update.body.signature.as_ref().map(|s| s.header_value());
    let rendered = multipart::render(&[multipart::Part {
        name: "directive",
        signature,
        body: &update.body.bytes,
    }])?;
    Ok(Renderings::RollBackToEmbedded {
        multipart_v1: RenderedResponse::multipart(ProtocolVersion::V1, &rendered),
    })
}

impl PreparedUpdates {
    /// Checks the release of one (project, platform, runtime version) (see
    /// [`ChannelRelease::check`]) and renders every response it can produce.
    /// `asset_request_headers` go, per manifest, into the `extensions` part for the asset
    /// keys that manifest has.
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] when a body does not parse as its kind, its id or date
    /// disagrees with the update's, two updates share an id, the manifests name different
    /// runtime versions, or an asset request header is invalid; [`Error::Release`] when the release breaks a
    /// rule of [`ChannelRelease::check`].
    pub fn new(
        release: ChannelRelease,
        asset_request_headers: &AssetRequestHeaders,
    ) -> Result<Self> {
        check_asset_request_headers(asset_request_headers)?;
        release.check()?;
        let invalid = |reason: String| Err(Error::InvalidManifest { reason });
        let mut runtime_version: Option<String> = None;
        let mut renderings: [Option<Renderings>; 3] = [None, None, None];
        let mut ids: [Option<(String, UpdateKind)>; 3] = [None, None, None];
        for (role, update) in release.updates() {
            let rendered = match update.kind {
                UpdateKind::Manifest => {
                    let manifest = Manifest::parse(&update.body.bytes)?;
                    if (manifest.id, manifest.created_at) != (update.id, update.created_at) {
                        return invalid(format!(
                            "update {}: the id and createdAt in the manifest body differ from the update's",
                            update.id
                        ));
                    }
                    match &runtime_version {
                        Some(known) if *known != manifest.runtime_version => {
                            return invalid(format!(
                                "update {} has runtimeVersion `{}` but others have `{known}`; prepare each runtime version separately",
                                update.id, manifest.runtime_version
                            ));
                        }
                        _ => runtime_version = Some(manifest.runtime_version.clone()),
                    }
                    manifest_renderings(update, &manifest, asset_request_headers)?
                }
                UpdateKind::RollBackToEmbedded => directive_renderings(update)?,
            };
            renderings[role.index()] = Some(rendered);
            ids[role.index()] = Some((update.id.to_string(), update.kind));
        }
        let all: Vec<&PublishedUpdate> = release.updates().map(|(_, u)| u).collect();
        for (i, a) in all.iter().enumerate() {
            if all[i + 1..].iter().any(|b| b.id == a.id) {
                return invalid(format!("update {} is published twice", a.id));
            }
        }
        let directive = multipart::render(&[multipart::Part {
            name: "directive",
            signature: None,
            body: &Directive::NoUpdateAvailable.to_bytes(),
        }])?;
        let base_aliases = release
            .base_aliases
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut prepared = Self {
            release,
            renderings,
            ids,
            base_aliases,
            runtime_version,
            no_update_available: RenderedResponse::multipart(ProtocolVersion::V1, &directive),
            no_content: RenderedResponse::new(204, ProtocolVersion::V1, None, None, Bytes::new()),
        };
        let every = prepared
            .renderings
            .iter_mut()
            .flatten()
            .flat_map(Renderings::iter_mut)
            .chain([&mut prepared.no_update_available, &mut prepared.no_content]);
        for (index, response) in every.enumerate() {
            response.index = index;
        }
        Ok(prepared)
    }

    /// Every response this can answer with, each once; the `n`th has
    /// [`RenderedResponse::index`] `n`.
    pub fn responses(&self) -> impl Iterator<Item = &RenderedResponse> {
        self.renderings
            .iter()
            .flatten()
            .flat_map(Renderings::iter)
            .chain([&self.no_update_available, &self.no_content])
    }

    /// The release this answers for.
    #[must_use]
    pub fn release(&self) -> &ChannelRelease {
        &self.release
    }

    /// The updates with their roles: base, target, standby.
    pub fn updates(&self) -> impl Iterator<Item = (Role, &PublishedUpdate)> {
        self.release.updates()
    }

    /// The role of the update with this id (lowercase, as requests carry ids), if it is one
    /// of the release's.
    #[must_use]
    pub fn role_of(&self, id: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| {
            self.ids[role.index()]
                .as_ref()
                .is_some_and(|(known, _)| known.eq_ignore_ascii_case(id))
        })
    }

    /// The runtime version the manifests name (`None` when there is no manifest).
    #[must_use]
    pub fn runtime_version(&self) -> Option<&str> {
        self.runtime_version.as_deref()
    }

    /// Chooses the pre-rendered answer to `request` (see [`crate::decide`] for the rules).
    ///
    /// A request for another runtime version than the manifests' sees no updates.
    /// `noUpdateAvailable` is a multipart `directive` part when the client accepts multipart
    /// and asked for no signature (it is unsigned), else a 204; "no update" to v1 is a 204.
    ///
    /// # Errors
    /// - [`Error::NoUpdate`] (404): a v0 client and no manifest to serve;
    /// - [`Error::RollbackNeedsProtocolV1`] (406): a rollback is due and the client speaks v0;
    /// - [`Error::DirectiveNeedsMultipart`] (406): a rollback is due and the client does not accept multipart;
    /// - [`Error::SignatureUnavailable`] (400): the client expects a signature under a key id the
    ///   update is not signed with (or the update is unsigned).
    pub fn answer(&self, request: &ManifestRequest) -> Result<Answer<'_>> {
        let other_runtime = self
            .runtime_version
            .as_deref()
            .is_some_and(|rv| rv != request.runtime_version);
        let rollout = self.release.rollout.as_ref();
        let mut updates = [None; 3];
        if !other_runtime {
            for (slot, id) in updates.iter_mut().zip(&self.ids) {
                *slot = id.as_ref().map(|(id, kind)| (id.as_str(), *kind));
            }
        }
        let view = View {
            updates,
            base_aliases: &self.base_aliases,
            percentage: rollout.map_or(0, |r| r.percentage),
            reverted: rollout.is_some_and(|r| r.reverted),
        };
        let found = |role: Role| {
            self.release
                .get(role)
                .zip(self.renderings[role.index()].as_ref())
                .ok_or(Error::NoUpdate)
        };
        let (kind, role, update, response) = match decide_role(&view, request)? {
            Outcome::Manifest(role) => {
                let (update, renderings) = found(role)?;
                check_signature(update, request.expect_signature.as_ref())?;
                let Renderings::Manifest(renderings) = renderings else {
                    return Err(Error::NoUpdate);
                };
                let per_version = match request.format {
                    ResponseFormat::Multipart => &renderings.multipart,
                    ResponseFormat::ExpoJson => &renderings.expo_json,
                    ResponseFormat::Json => &renderings.json,
                };
                (
                    DecisionKind::Manifest,
                    Some(role),
                    Some(update),
                    &per_version[version_index(request.protocol_version)],
                )
            }
            Outcome::RollBackToEmbedded(role) => {
                let (update, renderings) = found(role)?;
                if !request.accepts_multipart {
                    return Err(Error::DirectiveNeedsMultipart);
                }
                check_signature(update, request.expect_signature.as_ref())?;
                let Renderings::RollBackToEmbedded { multipart_v1 } = renderings else {
                    return Err(Error::NoUpdate);
                };
                (
                    DecisionKind::RollBackToEmbedded,
                    Some(role),
                    Some(update),
                    multipart_v1,
                )
            }
            Outcome::NoUpdateAvailable => {
                let as_directive = request.accepts_multipart && request.expect_signature.is_none();
                let response = if as_directive {
                    &self.no_update_available
                } else {
                    &self.no_content
                };
                (DecisionKind::NoUpdateAvailable, None, None, response)
            }
            Outcome::NoUpdate => (DecisionKind::NoUpdate, None, None, &self.no_content),
        };
        Ok(Answer {
            kind,
            update,
            role,
            response,
        })
    }
}

fn check_signature(update: &PublishedUpdate, expected: Option<&ExpectSignature>) -> Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match &update.body.signature {
        Some(signature) if signature.keyid() == expected.keyid => Ok(()),
        other => Err(Error::SignatureUnavailable {
            expected: expected.keyid.clone(),
            available: match other {
                Some(signature) => format!(
                    "update {} is signed with keyid `{}`",
                    update.id,
                    signature.keyid()
                ),
                None => format!("update {} is not signed", update.id),
            },
        }),
    }
}

#[cfg(test)]
mod tests;
