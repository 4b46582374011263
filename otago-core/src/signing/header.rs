//! The `expo-signature` header.

use std::fmt;

use super::{DEFAULT_KEY_ID, SIGNATURE_ALGORITHM, SIGNATURE_HEADER, Signature};
use crate::error::{Error, Result};

/// The value of an `expo-signature` header: a signature and the key id it was made under.
///
/// Rendered as `sig="<base64>", keyid="<keyid>", alg="rsa-v1_5-sha256"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    signature: Signature,
    keyid: String,
}

impl SignatureHeader {
    /// Pairs a signature with the key id the client expects (its `codeSigningMetadata.keyid`).
    ///
    /// # Errors
    /// [`Error::Signing`] if `keyid` is empty or has a character other than printable ASCII
    /// without `"` and `\`.
    pub fn new(signature: Signature, keyid: impl Into<String>) -> Result<Self> {
        let keyid = keyid.into();
        check_keyid(&keyid).map_err(|reason| Error::Signing { reason })?;
        Ok(Self { signature, keyid })
    }

    /// Parses an `expo-signature` header value, e.g. one a deployer supplies for a pre-signed
    /// manifest. As the client does, a missing `keyid` means [`DEFAULT_KEY_ID`] and a missing `alg`
    /// means [`SIGNATURE_ALGORITHM`].
    ///
    /// # Errors
    /// [`Error::BadHeader`] (400) if the value is not an RFC 8941 dictionary, `sig` is missing,
    /// a value is not a string, `sig` is not standard Base64, `alg` names another algorithm or
    /// `keyid` is not acceptable to [`SignatureHeader::new`].
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |problem: String| Error::BadHeader {
            header: SIGNATURE_HEADER,
            problem,
            status: 400,
        };
        let dict: sfv::Dictionary = sfv::Parser::new(value)
            .parse()
            .map_err(|e| bad(format!("not a structured-field dictionary: {e}")))?;
        let string_member = |name: &str| -> Result<Option<String>> {
            match dict.get(name) {
                None => Ok(None),
                Some(sfv::ListEntry::Item(sfv::Item {
                    bare_item: sfv::BareItem::String(s),
                    ..
                })) => Ok(Some(s.as_str().to_owned())),
                Some(_) => Err(bad(format!(
                    "`{name}` must be a quoted string, e.g. {name}=\"…\""
                ))),
            }
        };
        let sig = string_member("sig")?
            .ok_or_else(|| bad("`sig` is missing; write sig=\"<base64 signature>\"".to_owned()))?;
        let keyid = string_member("keyid")?.unwrap_or_else(|| DEFAULT_KEY_ID.to_owned());
        if let Some(alg) = string_member("alg")?
            && alg != SIGNATURE_ALGORITHM
        {
            return Err(bad(format!(
                "`alg` is `{alg}`, but expo-updates supports only `{SIGNATURE_ALGORITHM}`"
            )));
        }
        let signature = Signature::from_base64(&sig).map_err(|_| {
            bad(
                "`sig` is not standard Base64 with `=` padding (iOS clients refuse base64url)"
                    .into(),
            )
        })?;
        check_keyid(&keyid).map_err(bad)?;
        Ok(Self { signature, keyid })
    }

    /// The signature.
    #[must_use]
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The key id.
    #[must_use]
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// Renders the header value `sig="…", keyid="…", alg="rsa-v1_5-sha256"`.
    #[must_use]
    pub fn to_header_value(&self) -> String {
        let sig = self.signature.to_base64();
        let mut out = String::new();
        let mut ser = sfv::DictSerializer::with_buffer(&mut out);
        // Both strings are valid sf-strings: Base64 is printable ASCII and the key id was checked
        // on construction, so these conversions do not fail.
        for (name, value) in [
            ("sig", sig.as_str()),
            ("keyid", self.keyid.as_str()),
            ("alg", SIGNATURE_ALGORITHM),
        ] {
            if let Ok(value) = sfv::StringRef::from_str(value) {
                let _ = ser.bare_item(sfv::key_ref(name), value);
            }
        }
        let _ = ser.finish();
        out
    }
}

impl fmt::Display for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

fn check_keyid(keyid: &str) -> std::result::Result<(), String> {
    if keyid.is_empty() {
        let hint = "use the keyid of the app's codeSigningMetadata (`root` if it names none)";
        return Err(format!("the keyid is empty; {hint}"));
    }
    if let Some(c) = keyid
        .chars()
        .find(|c| !(' '..='~').contains(c) || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "the keyid `{}` contains {c:?}; a keyid may hold printable ASCII only, without \
             `\"` and `\\`",
            keyid.escape_debug()
        ));
    }
    Ok(())
}
