//! The structured (RFC 8941) request headers: `expo-expect-signature`, `expo-extra-params`
//! and `expo-recent-failed-update-ids`, parsed and rendered.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::convert::Infallible;

use sfv::{
    BareItemFromInput, DictSerializer, Dictionary, GenericBareItem, KeyRef, List, ListEntry,
    ListSerializer, Parser, StringRef, TokenRef, Version, visitor,
};

use super::{MAX_ID_LEN, bad};
use crate::Result;

/// The only signature algorithm clients know.
const SIGNATURE_ALGORITHM: &str = "rsa-v1_5-sha256";

/// The key id a client expects when its `codeSigningMetadata` names none.
const DEFAULT_EXPECTED_KEY_ID: &str = "root";

const EXPECT_SIGNATURE: &str = "expo-expect-signature";
const EXTRA_PARAMS: &str = "expo-extra-params";
const RECENT_FAILED: &str = "expo-recent-failed-update-ids";

/// What an `expo-expect-signature` request header asks for: a signature under `keyid`
/// with `rsa-v1_5-sha256` (the only algorithm clients support).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExpectSignature {
    /// The `sig` member; clients always send it as a bare `sig` (true). A request that
    /// carries the header gets a signed body whatever this says, as clients with a
    /// certificate refuse unsigned ones.
    pub sig: bool,
    /// The key id the signature must be made with (`root` when the client sends none).
    pub keyid: String,
}

impl Default for ExpectSignature {
    fn default() -> Self {
        Self::new(DEFAULT_EXPECTED_KEY_ID)
    }
}

fn string_or_token<S, B, T, D>(item: &GenericBareItem<S, B, T, D>) -> Option<&str>
where
    S: Borrow<StringRef>,
    T: Borrow<TokenRef>,
{
    item.as_string()
        .map(StringRef::as_str)
        .or_else(|| item.as_token().map(TokenRef::as_str))
}

/// A dictionary member `expo-expect-signature` reads, as its last occurrence left it.
#[derive(Debug, Default)]
enum Member<'de> {
    #[default]
    Absent,
    Item(BareItemFromInput<'de>),
    InnerList,
}

/// The members of `expo-expect-signature`, gathered while parsing (no map, no copies: this
/// runs on every manifest request of an app that checks signatures).
#[derive(Debug, Default)]
struct ExpectMembers<'de> {
    sig: Member<'de>,
    keyid: Member<'de>,
    alg: Member<'de>,
}

impl<'de> Member<'de> {
    /// The member's item, `None` when absent; an inner list is refused.
    fn item(&self, key: &str, example: &str) -> Result<Option<&BareItemFromInput<'de>>> {
        match self {
            Self::Absent => Ok(None),
            Self::Item(item) => Ok(Some(item)),
            Self::InnerList => Err(bad(
                EXPECT_SIGNATURE,
                format!("`{key}` is a list; send e.g. `{example}`"),
            )),
        }
    }
}

impl<'de> visitor::DictionaryVisitor<'de> for ExpectMembers<'de> {
    type Out = Self;
    type Error = Infallible;

    fn entry(
        &mut self,
        key: &'de KeyRef,
    ) -> std::result::Result<impl visitor::EntryVisitor<'de>, Infallible> {
        // A later occurrence of a key replaces an earlier one (RFC 8941 §4.2.2).
        Ok(match key.as_str() {
            "sig" => Some(&mut self.sig),
            "keyid" => Some(&mut self.keyid),
            "alg" => Some(&mut self.alg),
            _ => None,
        })
    }

    fn finish(self) -> std::result::Result<Self, Infallible> {
        Ok(self)
    }
}

impl<'de> visitor::EntryVisitor<'de> for &mut Member<'de> {
    type Error = Infallible;

    fn item(self) -> std::result::Result<impl visitor::ItemVisitor<'de>, Infallible> {
        Ok(self)
    }

    fn inner_list(self) -> std::result::Result<impl visitor::InnerListVisitor<'de>, Infallible> {
        *self = Member::InnerList;
        Ok(visitor::Ignored)
    }
}

impl<'de> visitor::ItemVisitor<'de> for &mut Member<'de> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare_item: BareItemFromInput<'de>,
    ) -> std::result::Result<impl visitor::ParameterVisitor<'de, Out = ()>, Infallible> {
        *self = Member::Item(bare_item);
        Ok(visitor::Ignored)
    }
}

fn parse_dictionary(header: &'static str, value: &str, example: &str) -> Result<Dictionary> {
    Parser::new(value)
        .with_version(Version::Rfc8941)
        .parse::<Dictionary>()
        .map_err(|err| not_a_dictionary(header, &err, example))
}

fn not_a_dictionary(header: &'static str, err: &sfv::Error, example: &str) -> crate::Error {
    bad(
        header,
        format!("not a structured-field dictionary ({err}); send e.g. `{example}`"),
    )
}

impl ExpectSignature {
    /// A request for a signature under `keyid`.
    #[must_use]
    pub fn new(keyid: impl Into<String>) -> Self {
        Self {
            sig: true,
            keyid: keyid.into(),
        }
    }

    /// Parses an `expo-expect-signature` value, e.g. `sig, keyid="main", alg="rsa-v1_5-sha256"`.
    /// `keyid` defaults to `root` and `alg` to `rsa-v1_5-sha256`; other members are ignored.
    ///
    /// # Errors
    /// [`crate::Error::BadHeader`] (400) for a value that is not an SFV dictionary, a `sig` that
    /// is not a boolean, an empty or non-string `keyid`, or an `alg` other than `rsa-v1_5-sha256`.
    pub fn parse(value: &str) -> Result<Self> {
        let example = r#"sig, keyid="root", alg="rsa-v1_5-sha256""#;
        let members = Parser::new(value)
            .with_version(Version::Rfc8941)
            .parse_dictionary_with_visitor(ExpectMembers::default())
            .map_err(|err| not_a_dictionary(EXPECT_SIGNATURE, &err, example))?;
        let sig = match Member::item(&members.sig, "sig", example)? {
            None => true,
            Some(value) => value.as_boolean().ok_or_else(|| {
                bad(
                    EXPECT_SIGNATURE,
                    format!("`sig` must be a boolean; send e.g. `{example}`"),
                )
            })?,
        };
        let keyid = match Member::item(&members.keyid, "keyid", example)? {
            None => DEFAULT_EXPECTED_KEY_ID,
            Some(value) => string_or_token(value)
                .filter(|keyid| !keyid.is_empty())
                .ok_or_else(|| {
                    bad(
                        EXPECT_SIGNATURE,
                        format!("`keyid` must be a non-empty string; send e.g. `{example}`"),
                    )
                })?,
        };
        if let Some(alg) = Member::item(&members.alg, "alg", example)? {
            let alg = string_or_token(alg).unwrap_or_default();
            if alg != SIGNATURE_ALGORITHM {
                return Err(bad(
                    EXPECT_SIGNATURE,
                    format!(
                        "algorithm `{}` is not supported; send `alg=\"{SIGNATURE_ALGORITHM}\"`",
                        alg.escape_debug()
                    ),
                ));
            }
        }
        Ok(Self {
            sig,
            keyid: keyid.to_owned(),
        })
    }

    /// The header value a client sends, e.g. `sig, keyid="main", alg="rsa-v1_5-sha256"`.
    ///
    /// # Errors
    /// [`crate::Error::BadHeader`] when the key id is empty or not printable ASCII.
    pub fn to_header_value(&self) -> Result<String> {
        let keyid = StringRef::from_str(&self.keyid)
            .ok()
            .filter(|_| !self.keyid.is_empty())
            .ok_or_else(|| {
                bad(
                    EXPECT_SIGNATURE,
                    "`keyid` must be non-empty printable ASCII; use a key id like `main`",
                )
            })?;
        let mut dictionary = DictSerializer::new();
        dictionary.bare_item(KeyRef::constant("sig"), self.sig);
        dictionary.bare_item(KeyRef::constant("keyid"), keyid);
        dictionary.bare_item(
            KeyRef::constant("alg"),
            StringRef::constant(SIGNATURE_ALGORITHM),
        );
        Ok(dictionary.finish().unwrap_or_default())
    }
}

/// Parses an `expo-extra-params` value, an SFV dictionary of strings such as
/// `channel="beta", cohort="a"`; an empty value gives an empty map.
///
/// # Errors
/// [`crate::Error::BadHeader`] (400) when the value is not a dictionary or a member is not a string.
pub fn parse_extra_params(value: &str) -> Result<BTreeMap<String, String>> {
    let example = r#"key="value", other="value""#;
    let dictionary = parse_dictionary(EXTRA_PARAMS, value, example)?;
    dictionary
        .iter()
        .map(|(key, entry)| {
            let text = match entry {
                ListEntry::Item(item) => item.bare_item.as_string(),
                ListEntry::InnerList(_) => None,
            };
            let text = text.ok_or_else(|| {
                bad(
                    EXTRA_PARAMS,
                    format!(
                        "`{}` is not a string; send quoted values, e.g. `{example}`",
                        key.as_str()
                    ),
                )
            })?;
            Ok((key.as_str().to_owned(), text.as_str().to_owned()))
        })
        .collect()
}

/// The `expo-extra-params` value for `params` (what `Updates.setExtraParamAsync` makes the
/// client send); an empty map gives an empty string, meaning: leave the header out.
///
/// # Errors
/// [`crate::Error::BadHeader`] when a key is not an SFV key (lowercase letters, digits,
/// `_ - . *`, starting with a letter or `*`) or a value is not printable ASCII.
pub fn extra_params_header_value(params: &BTreeMap<String, String>) -> Result<String> {
    let mut dictionary = DictSerializer::new();
    for (key, value) in params {
        let key = KeyRef::from_str(key).map_err(|_| {
            bad(
                EXTRA_PARAMS,
                format!("`{}` is not a structured-field key; use lowercase letters, digits, `_`, `-`, `.` or `*`, starting with a letter", key.escape_debug()),
            )
        })?;
        let value = StringRef::from_str(value).map_err(|_| {
            bad(
                EXTRA_PARAMS,
                format!(
                    "the value of `{}` is not printable ASCII; use plain text",
                    key.as_str()
                ),
            )
        })?;
        dictionary.bare_item(key, value);
    }
    Ok(dictionary.finish().unwrap_or_default())
}

/// Parses an `expo-recent-failed-update-ids` value, an SFV list of strings such as
/// `"0a1b…", "2c3d…"`; ids are lowercased, an empty value gives an empty list.
///
/// # Errors
/// [`crate::Error::BadHeader`] (400) when the value is not a list of strings or an id is
/// longer than [`MAX_ID_LEN`].
pub fn parse_recent_failed_update_ids(value: &str) -> Result<Vec<String>> {
    let example = r#""0a1b2c3d-0000-4000-8000-000000000000", "…""#;
    let list: List = Parser::new(value)
        .with_version(Version::Rfc8941)
        .parse()
        .map_err(|err| {
            bad(
                RECENT_FAILED,
                format!("not a structured-field list ({err}); send e.g. `{example}`"),
            )
        })?;
    list.iter()
        .map(|entry| match entry {
            ListEntry::Item(item) => match item.bare_item.as_string() {
                Some(id) if id.as_str().len() <= MAX_ID_LEN => Ok(id.as_str().to_ascii_lowercase()),
                Some(_) => Err(bad(
                    RECENT_FAILED,
                    format!("an id is longer than {MAX_ID_LEN} characters; send update UUIDs"),
                )),
                None => Err(bad(
                    RECENT_FAILED,
                    format!("every member must be a quoted string; send e.g. `{example}`"),
                )),
            },
            ListEntry::InnerList(_) => Err(bad(
                RECENT_FAILED,
                format!("inner lists are not allowed; send e.g. `{example}`"),
            )),
        })
        .collect()
}

/// The `expo-recent-failed-update-ids` value for `ids`; an empty slice gives an empty string,
/// meaning: leave the header out.
///
/// # Errors
/// [`crate::Error::BadHeader`] when an id is not printable ASCII.
pub fn recent_failed_update_ids_header_value(ids: &[impl AsRef<str>]) -> Result<String> {
    let mut list = ListSerializer::new();
    for id in ids {
        let id = StringRef::from_str(id.as_ref()).map_err(|_| {
            bad(
                RECENT_FAILED,
                "an id is not printable ASCII; send update UUIDs",
            )
        })?;
        list.bare_item(id);
    }
    Ok(list.finish().unwrap_or_default())
}
