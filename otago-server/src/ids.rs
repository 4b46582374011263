//! Identifiers and secrets: making them, checking their shape before any lookup, hashing.

use rand::Rng as _;
use rand::distributions::{Alphanumeric, Uniform};
use sha2::{Digest as _, Sha256};

/// Prefix of every API key secret (and of generated admin tokens).
pub(crate) const SECRET_PREFIX: &str = "otago_";

/// Alphanumerics after the prefix of an API key secret.
const SECRET_LEN: usize = 40;

/// The shortest admin token the server accepts.
pub(crate) const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Longest bearer token considered at all.
pub(crate) const MAX_TOKEN_LEN: usize = 256;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn lower_alnum(len: usize) -> String {
    let mut rng = rand::thread_rng();
    let pick = Uniform::from(0..LOWER_ALNUM.len());
    (0..len)
        .map(|_| char::from(LOWER_ALNUM[rng.sample(pick)]))
        .collect()
}

fn alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A new project ref: `p_` and ten lowercase alphanumerics.
pub(crate) fn new_project_ref() -> String {
    format!("p_{}", lower_alnum(10))
}

/// A new API key id: `k_` and ten lowercase alphanumerics.
pub(crate) fn new_key_id() -> String {
    format!("k_{}", lower_alnum(10))
}

/// A new API key secret: `otago_` and 40 alphanumerics (about 238 bits).
pub(crate) fn new_key_secret() -> String {
    format!("{SECRET_PREFIX}{}", alnum(SECRET_LEN))
}

/// Whether `token` has the shape of an API key secret (checked before any lookup).
pub(crate) fn is_key_secret(token: &str) -> bool {
    token.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A new admin token: `otago_admin_` and 40 alphanumerics.
pub(crate) fn new_admin_token() -> String {
    format!("{SECRET_PREFIX}admin_{}", alnum(40))
}

/// A new lowercase v4 UUID (group ids, directive update ids).
pub(crate) fn new_uuid() -> String {
    otago_core::UpdateId::from_random_bytes(rand::random()).to_string()
}

fn prefixed(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 10
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Whether `text` has the shape of a project ref.
pub(crate) fn is_project_ref(text: &str) -> bool {
    prefixed(text, "p_")
}

/// Whether `text` has the shape of an API key id.
pub(crate) fn is_key_id(text: &str) -> bool {
    prefixed(text, "k_")
}

/// `text` as a lowercase hyphenated UUID, if it is one.
pub(crate) fn normalize_uuid(text: &str) -> Option<String> {
    text.parse::<otago_core::UpdateId>()
        .ok()
        .map(|id| id.to_string())
}

/// Whether `text` is a valid app or environment name: 1–64 of `[a-z0-9-]`.
pub(crate) fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// SHA-256 of a secret.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares two digests in constant time.
pub(crate) fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_their_shape() {
        assert!(is_project_ref(&new_project_ref()));
        assert!(is_key_id(&new_key_id()));
        assert!(!is_project_ref("p_../../etc"));
        assert!(!is_project_ref("p_ABCDEFGHIJ"));
        let secret = new_key_secret();
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() == 46);
        assert!(is_key_secret(&secret));
        assert!(!is_key_secret(&new_admin_token()));
        assert!(!is_key_secret(&format!("{secret}x")));
        assert!(!is_key_secret(&secret.replace(SECRET_PREFIX, "otago-")));
        assert!(!is_key_secret(&format!("{}-", &secret[..45])));
        assert_ne!(new_key_secret(), secret);
        let id = new_uuid();
        assert_eq!(
            normalize_uuid(&id.to_uppercase()).as_deref(),
            Some(id.as_str())
        );
        assert!(normalize_uuid("x").is_none());
    }

    #[test]
    fn names_and_digests() {
        assert!(is_name("my-app-2"));
        assert!(!is_name("") && !is_name("My") && !is_name(&"a".repeat(65)) && !is_name("a b"));
        assert!(digest_eq(&sha256(b"a"), &sha256(b"a")));
        assert!(!digest_eq(&sha256(b"a"), &sha256(b"b")));
    }
}
