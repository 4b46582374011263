//! Parsing a manifest request: the method and headers of `GET <manifest endpoint>`.
//!
//! [`ManifestRequest::parse`] turns raw headers into checked values; every problem is an
//! [`Error::BadHeader`] that names the header and says what to send instead (400, or 431 for
//! an oversized value, or 406 when nothing in `accept` can be served), or an
//! [`Error::MethodNotAllowed`] (405).

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::{Error, Platform, Result};

mod accept;
mod sfv_headers;

pub use sfv_headers::{
    ExpectSignature, extra_params_header_value, parse_extra_params, parse_recent_failed_update_ids,
    recent_failed_update_ids_header_value,
};

/// The largest header value (in bytes) a manifest request may carry in any header the
/// protocol reads; a longer one is refused with 431. Repeated list headers are limited
/// to this size together.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;

/// The longest update id or `EAS-Client-ID` accepted (a UUID has 36 characters).
pub const MAX_ID_LEN: usize = 128;

/// The longest runtime version, in bytes: what a publish accepts, so a longer
/// `expo-runtime-version` can never match an update and is refused at the header (400).
pub const MAX_RUNTIME_VERSION_LEN: usize = 255;

/// The version of the Expo Updates protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// Version 0: no `expo-protocol-version` header; manifests only, never directives or 204.
    V0,
    /// Version 1: `expo-protocol-version: 1`; directives and 204 allowed.
    V1,
}

impl ProtocolVersion {
    /// The bare integer sent in the `expo-protocol-version` header.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0 => "0",
            Self::V1 => "1",
        }
    }
}

/// How a manifest is sent back, chosen from the request's `accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFormat {
    /// `multipart/mixed` with `manifest` and `extensions` parts (or a `directive` part).
    Multipart,
    /// A single `application/expo+json` body (manifests only).
    ExpoJson,
    /// A single `application/json` body (manifests only).
    Json,
}

impl ResponseFormat {
    /// The media type of this format (without the multipart boundary parameter).
    #[must_use]
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Multipart => "multipart/mixed",
            Self::ExpoJson => "application/expo+json",
            Self::Json => "application/json",
        }
    }
}

/// A checked manifest request. Its text borrows from the request's header values where it can
/// (`'v`), so that reading a request copies nothing in the usual case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRequest<'v> {
    /// `expo-platform`.
    pub platform: Platform,
    /// `expo-runtime-version`, exactly as sent (never empty).
    pub runtime_version: Cow<'v, str>,
    /// `expo-protocol-version`; [`ProtocolVersion::V0`] when the header is absent.
    pub protocol_version: ProtocolVersion,
    /// `expo-current-update-id`, lowercased: the update the client runs now.
    pub current_update_id: Option<Cow<'v, str>>,
    /// `expo-embedded-update-id`, lowercased: the update inside the client's binary.
    pub embedded_update_id: Option<Cow<'v, str>>,
    /// `expo-channel-name`.
    pub channel_name: Option<Cow<'v, str>>,
    /// `expo-expect-signature`: present when the app checks code signatures.
    pub expect_signature: Option<ExpectSignature>,
    /// `expo-extra-params`: an SFV dictionary of strings (empty when absent).
    pub extra_params: BTreeMap<String, String>,
    /// `expo-recent-failed-update-ids`: an SFV list of strings, lowercased (empty when absent).
    pub recent_failed_update_ids: Vec<String>,
    /// `eas-client-id`: a stable per-install id, used for rollouts.
    pub client_id: Option<Cow<'v, str>>,
    /// `a-im` tokens, lowercased (e.g. `bsdiff`); empty when absent.
    pub a_im: Vec<String>,
    /// The format a manifest is sent in: the acceptable one with the highest q-value,
    /// ties going to multipart, then `application/expo+json`, then `application/json`.
    pub format: ResponseFormat,
    /// Whether `multipart/mixed` is acceptable at all (directives need it).
    pub accepts_multipart: bool,
}

/// The request headers the protocol reads, and whether a repeat is joined (lists) or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Platform,
    RuntimeVersion,
    ProtocolVersion,
    CurrentUpdateId,
    EmbeddedUpdateId,
    ChannelName,
    ExpectSignature,
    ExtraParams,
    RecentFailedUpdateIds,
    ClientId,
    AIm,
    Accept,
}

/// The header name of each [`Field`], in the order of its variants (`Field as usize` indexes it).
const FIELDS: [(&str, Field); 12] = [
    ("expo-platform", Field::Platform),
    ("expo-runtime-version", Field::RuntimeVersion),
    ("expo-protocol-version", Field::ProtocolVersion),
    ("expo-current-update-id", Field::CurrentUpdateId),
    ("expo-embedded-update-id", Field::EmbeddedUpdateId),
    ("expo-channel-name", Field::ChannelName),
    ("expo-expect-signature", Field::ExpectSignature),
    ("expo-extra-params", Field::ExtraParams),
    (
        "expo-recent-failed-update-ids",
        Field::RecentFailedUpdateIds,
    ),
    ("eas-client-id", Field::ClientId),
    ("a-im", Field::AIm),
    ("accept", Field::Accept),
];

impl Field {
    /// The field a header name stands for, case-insensitively. Candidates are picked by the
    /// name's length first: most headers of a request are not the protocol's.
    fn named(name: &str) -> Option<Self> {
        let candidates: &[Self] = match name.len() {
            4 => &[Self::AIm],
            6 => &[Self::Accept],
            13 => &[Self::Platform, Self::ClientId],
            17 => &[Self::ChannelName, Self::ExtraParams],
            20 => &[Self::RuntimeVersion],
            21 => &[Self::ProtocolVersion, Self::ExpectSignature],
            22 => &[Self::CurrentUpdateId],
            23 => &[Self::EmbeddedUpdateId],
            29 => &[Self::RecentFailedUpdateIds],
            _ => return None,
        };
        candidates.iter().copied().find(|&field| {
            let known = FIELDS[field as usize].0;
            // HTTP/1 servers hand names over lowercased: a plain comparison settles most.
            known == name || known.eq_ignore_ascii_case(name)
        })
    }

    /// Whether repeats of the header are joined with `, ` (RFC 9110 list fields and SFV
    /// lists/dictionaries) rather than refused.
    fn is_list(self) -> bool {
        matches!(
            self,
            Self::ExpectSignature
                | Self::ExtraParams
                | Self::RecentFailedUpdateIds
                | Self::AIm
                | Self::Accept
        )
    }
}

/// The error for a bad header value: 400 unless told otherwise.
pub(crate) fn bad(header: &'static str, problem: impl Into<String>) -> Error {
    Error::BadHeader {
        header,
        problem: problem.into(),
        status: 400,
    }
}

/// Whether every byte is printable ASCII (`' '..='~'`), eight bytes at a time.
fn is_printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH_BITS: u64 = ONES * 0x80;
    let (words, rest) = bytes.as_chunks::<8>();
    let any_unprintable = words.iter().any(|word| {
        let word = u64::from_ne_bytes(*word);
        // High bit set in a byte's lane when that byte is below 0x20, or above 0x7e.
        let below_space = word.wrapping_sub(ONES * 0x20) & !word;
        let above_tilde = word.wrapping_add(ONES) | word;
        (below_space | above_tilde) & HIGH_BITS != 0
    });
    !any_unprintable && rest.iter().all(|b| matches!(b, b' '..=b'~'))
}

/// Checks one raw value: size, UTF-8 and control characters; trims surrounding spaces and tabs.
fn header_text<'v>(name: &'static str, raw: &'v [u8]) -> Result<&'v str> {
    if raw.len() > MAX_HEADER_VALUE_BYTES {
        return Err(Error::BadHeader {
            header: name,
            problem: format!(
                "the value has {} bytes; send at most {MAX_HEADER_VALUE_BYTES}",
                raw.len()
            ),
            status: 431,
        });
    }
    // The usual value: printable ASCII between optional spaces and tabs.
    let is_blank = |b: &u8| matches!(b, b' ' | b'\t');
    let start = raw.iter().position(|b| !is_blank(b)).unwrap_or(raw.len());
    let end = raw
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |last| last + 1);
    let trimmed = &raw[start..end];
    if is_printable_ascii(trimmed)
        && let Ok(text) = std::str::from_utf8(trimmed)
    {
        return Ok(text);
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| bad(name, "the value is not UTF-8; send ASCII text"))?;
    let text = text.trim_matches([' ', '\t']);
    if text.chars().any(char::is_control) {
        return Err(bad(
            name,
            "the value contains control characters; send printable text on one line",
        ));
    }
    Ok(text)
}

/// The values of the headers the protocol reads, repeats already joined or refused. Values
/// are borrowed from the request; only joined repeats are copied.
#[derive(Default)]
struct Collected<'v> {
    values: [Option<Cow<'v, str>>; FIELDS.len()],
}

impl<'v> Collected<'v> {
    fn get(&self, field: Field) -> Option<&str> {
        self.values[field as usize].as_deref()
    }

    /// A field's value, moved out: borrowed from the request unless repeats were joined.
    fn take(&mut self, field: Field) -> Option<Cow<'v, str>> {
        self.values[field as usize].take()
    }

    fn add(&mut self, field: Field, raw: &'v [u8]) -> Result<()> {
        let index = field as usize;
        let name = FIELDS[index].0;
        let text = header_text(name, raw)?;
        match &mut self.values[index] {
            slot @ None => *slot = Some(Cow::Borrowed(text)),
            Some(_) if !field.is_list() => {
                return Err(bad(name, "the header is sent more than once; send it once"));
            }
            Some(joined) => {
                if joined.len() + 2 + text.len() > MAX_HEADER_VALUE_BYTES {
                    return Err(Error::BadHeader {
                        header: name,
                        problem: format!(
                            "the repeated values add up to more than {MAX_HEADER_VALUE_BYTES} bytes; send fewer"
                        ),
                        status: 431,
                    });
                }
                let joined = joined.to_mut();
                joined.push_str(", ");
                joined.push_str(text);
            }
        }
        Ok(())
    }
}

/// A non-empty update id: ASCII letters, digits and `-`, lowercased, at most [`MAX_ID_LEN`].
fn update_id<'v>(name: &'static str, value: Option<Cow<'v, str>>) -> Result<Option<Cow<'v, str>>> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let mut uppercase = false;
    let well_formed = value.len() <= MAX_ID_LEN
        && value.bytes().all(|b| {
            uppercase |= b.is_ascii_uppercase();
            b.is_ascii_alphanumeric() || b == b'-'
        });
    if !well_formed {
        return Err(bad(
            name,
            format!(
                "send the update's id, a UUID like 0a1b2c3d-0000-4000-8000-000000000000 (letters, digits and `-`, at most {MAX_ID_LEN})"
            ),
        ));
    }
    if uppercase {
        return Ok(Some(Cow::Owned(value.to_ascii_lowercase())));
    }
    Ok(Some(value))
}

impl<'v> ManifestRequest<'v> {
    /// Checks the method and reads the protocol headers of a manifest request.
    ///
    /// Header names are matched case-insensitively; headers the protocol does not read are
    /// ignored. `HEAD` is treated as `GET` (the caller leaves out the body).
    ///
    /// # Errors
    /// - [`Error::MethodNotAllowed`] (405) for a method other than `GET` or `HEAD`;
    /// - [`Error::BadHeader`] with status 431 for a value over [`MAX_HEADER_VALUE_BYTES`];
    /// - [`Error::BadHeader`] with status 406 when `accept` allows no format the server sends;
    /// - [`Error::BadHeader`] with status 400 for a missing or invalid `expo-platform` or
    ///   `expo-runtime-version` (longer than [`MAX_RUNTIME_VERSION_LEN`] included), an `expo-protocol-version` other than `0`/`1` or repeated,
    ///   a malformed structured header, non-UTF-8 or control characters.
    pub fn parse<'n>(
        method: &str,
        headers: impl IntoIterator<Item = (&'n str, &'v [u8])>,
    ) -> Result<Self> {
        if method != "GET" && method != "HEAD" {
            return Err(Error::MethodNotAllowed {
                method: method
                    .chars()
                    .take(32)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            });
        }
        let mut collected = Collected::default();
        for (name, value) in headers {
            if let Some(field) = Field::named(name) {
                collected.add(field, value)?;
            }
        }
        Self::from_collected(collected)
    }

    /// The same request owning its text, to keep beyond the headers it was read from.
    #[must_use]
    pub fn into_owned(self) -> ManifestRequest<'static> {
        let owned = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        ManifestRequest {
            platform: self.platform,
            runtime_version: owned(self.runtime_version),
            protocol_version: self.protocol_version,
            current_update_id: self.current_update_id.map(owned),
            embedded_update_id: self.embedded_update_id.map(owned),
            channel_name: self.channel_name.map(owned),
            expect_signature: self.expect_signature,
            extra_params: self.extra_params,
            recent_failed_update_ids: self.recent_failed_update_ids,
            client_id: self.client_id.map(owned),
            a_im: self.a_im,
            format: self.format,
            accepts_multipart: self.accepts_multipart,
        }
    }

    fn from_collected(mut c: Collected<'v>) -> Result<Self> {
        let platform = match c.get(Field::Platform) {
            None | Some("") => {
                return Err(bad(
                    "expo-platform",
                    "the header is missing; send `expo-platform: ios` or `android`",
                ));
            }
            Some(value) => value.parse::<Platform>()?,
        };
        let runtime_version = match c.take(Field::RuntimeVersion) {
            Some(value) if value.len() > MAX_RUNTIME_VERSION_LEN => {
                return Err(bad(
                    "expo-runtime-version",
                    format!(
                        "the runtime version has {} bytes; no update can target more than {MAX_RUNTIME_VERSION_LEN}, send the app's runtime version",
                        value.len()
                    ),
                ));
            }
            Some(value) if !value.is_empty() => value,
            _ => {
                return Err(bad(
                    "expo-runtime-version",
                    "the header is missing; send the app's runtime version, e.g. `expo-runtime-version: 1.0.0`",
                ));
            }
        };
        let protocol_version = match c.get(Field::ProtocolVersion) {
            None => ProtocolVersion::V0,
            Some("0") => ProtocolVersion::V0,
            Some("1") => ProtocolVersion::V1,
            Some(other) => {
                return Err(bad(
                    "expo-protocol-version",
                    format!(
                        "`{}` is not a protocol version; send `1` (or leave the header out for 0)",
                        other.escape_debug()
                    ),
                ));
            }
        };
        let (format, accepts_multipart) = accept::negotiate(c.get(Field::Accept))?;
        let client_id = match c.take(Field::ClientId).filter(|v| !v.is_empty()) {
            Some(id) if id.len() > MAX_ID_LEN => {
                return Err(bad(
                    "eas-client-id",
                    format!("send the install's id, at most {MAX_ID_LEN} characters"),
                ));
            }
            id => id,
        };
        Ok(Self {
            platform,
            runtime_version,
            protocol_version,
            current_update_id: update_id("expo-current-update-id", c.take(Field::CurrentUpdateId))?,
            embedded_update_id: update_id(
                "expo-embedded-update-id",
                c.take(Field::EmbeddedUpdateId),
            )?,
            channel_name: c.take(Field::ChannelName).filter(|v| !v.is_empty()),
            expect_signature: c
                .get(Field::ExpectSignature)
                .map(ExpectSignature::parse)
                .transpose()?,
            extra_params: parse_extra_params(c.get(Field::ExtraParams).unwrap_or_default())?,
            recent_failed_update_ids: parse_recent_failed_update_ids(
                c.get(Field::RecentFailedUpdateIds).unwrap_or_default(),
            )?,
            client_id,
            a_im: c
                .get(Field::AIm)
                .unwrap_or_default()
                .split(',')
                .map(|token| {
                    token
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase()
                })
                .filter(|token| !token.is_empty())
                .collect(),
            format,
            accepts_multipart,
        })
    }
}

#[cfg(test)]
mod tests;
