//! Private keys, public keys and signatures.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

use super::{HINT_GENERATE, MIN_KEY_BITS, invalid_key, single_pem_block, wrong_block};
use crate::error::{Error, Result};

/// An RSA private key that signs update manifests and directives.
///
/// Its `Debug` output shows the key size only, never the key.
#[derive(Clone)]
pub struct SigningKey {
    signer: pkcs1v15::SigningKey<Sha256>,
    public_key: PublicKey,
}

impl SigningKey {
    /// Reads a private key from PEM text: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what
    /// `codesigning:generate` writes) or PKCS#8 (`BEGIN PRIVATE KEY`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text holds no such block (or several), the key is not RSA, is
    /// encrypted, is inconsistent, or is shorter than [`MIN_KEY_BITS`].
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = single_pem_block(
            pem_text,
            "a private key",
            "RSA PRIVATE KEY` or `PRIVATE KEY",
        )
        .map_err(invalid_key)?;
        let key = match block.tag() {
            "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(block.contents())
                .map_err(|e| invalid_key(format!("the PKCS#1 private key cannot be read: {e}")))?,
            "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(block.contents()).map_err(|e| {
                invalid_key(format!(
                    "the PKCS#8 private key cannot be read as an RSA key: {e}; \
                     expo-updates signs with RSA only, {HINT_GENERATE}"
                ))
            })?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid_key(
                    "the private key is encrypted; decrypt it first, e.g. \
                     `openssl pkey -in encrypted.pem -out private-key.pem`"
                        .to_owned(),
                ));
            }
            other => return Err(invalid_key(wrong_block(other, "a private key"))),
        };
        key.validate()
            .map_err(|e| invalid_key(format!("the RSA private key is inconsistent: {e}")))?;
        let bits = key.size() * 8;
        if bits < MIN_KEY_BITS {
            return Err(invalid_key(format!(
                "the RSA key has {bits} bits, fewer than {MIN_KEY_BITS}; {HINT_GENERATE}"
            )));
        }
        Ok(Self::from_rsa(key))
    }

    pub(super) fn from_rsa(key: RsaPrivateKey) -> Self {
        let public_key = PublicKey(key.to_public_key());
        Self {
            signer: pkcs1v15::SigningKey::new(key),
            public_key,
        }
    }

    /// Signs `bytes` with RSASSA-PKCS1-v1_5 over SHA-256, as expo-updates verifies the exact bytes
    /// of a manifest or directive part. The signature is deterministic.
    #[must_use]
    pub fn sign(&self, bytes: &[u8]) -> Signature {
        // Cannot fail: PKCS#1 v1.5 with SHA-256 fits any key of at least MIN_KEY_BITS, which
        // `from_pem` and `generate_key_and_certificate` guarantee.
        Signature(self.signer.sign(bytes).to_vec())
    }

    /// The public half of this key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("bits", &(self.public_key.0.size() * 8))
            .finish_non_exhaustive()
    }
}

/// An RSA public key that verifies signatures made by a [`SigningKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(pub(super) RsaPublicKey);

impl PublicKey {
    /// Reads a public key from PEM text: SPKI (`BEGIN PUBLIC KEY`, what `codesigning:generate`
    /// writes as `public-key.pem`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the text holds no such block (or several) or the key is not RSA.
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let block = single_pem_block(pem_text, "a public key", "PUBLIC KEY` or `RSA PUBLIC KEY")
            .map_err(invalid_key)?;
        let key = match block.tag() {
            "PUBLIC KEY" => RsaPublicKey::from_public_key_der(block.contents()).map_err(|e| {
                invalid_key(format!("the public key cannot be read as an RSA key: {e}"))
            })?,
            "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_der(block.contents())
                .map_err(|e| invalid_key(format!("the PKCS#1 public key cannot be read: {e}")))?,
            other => return Err(invalid_key(wrong_block(other, "a public key"))),
        };
        Ok(Self(key))
    }

    /// Renders the key as SPKI PEM (`BEGIN PUBLIC KEY`), with `\n` line endings.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the key cannot be encoded (not expected for a parsed key).
    pub fn to_pem(&self) -> Result<String> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| invalid_key(format!("the public key cannot be encoded: {e}")))
    }

    /// Checks that `signature` is an RSASSA-PKCS1-v1_5/SHA-256 signature of exactly `bytes` by the
    /// private key of this public key.
    ///
    /// # Errors
    /// [`Error::SignatureMismatch`] if it is not.
    pub fn verify(&self, bytes: &[u8], signature: &Signature) -> Result<()> {
        let mismatch = || Error::SignatureMismatch {
            reason: "it was not made over these exact bytes with the private key of this \
                     public key; sign the body as sent, with the key that belongs to the app's \
                     certificate"
                .to_owned(),
        };
        let signature =
            pkcs1v15::Signature::try_from(signature.as_bytes()).map_err(|_| mismatch())?;
        pkcs1v15::VerifyingKey::<Sha256>::new(self.0.clone())
            .verify(bytes, &signature)
            .map_err(|_| mismatch())
    }
}

/// An RSASSA-PKCS1-v1_5/SHA-256 signature; displayed as standard Base64 with padding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// Wraps raw signature bytes.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Decodes strict standard Base64 (RFC 4648 §4, `+/`, with `=` padding), the encoding
    /// expo-updates clients accept.
    ///
    /// # Errors
    /// [`Error::SignatureMismatch`] if `text` is not such Base64 (base64url, for instance).
    pub fn from_base64(text: &str) -> Result<Self> {
        BASE64
            .decode(text)
            .map(Self)
            .map_err(|e| Error::SignatureMismatch {
                reason: format!(
                    "the signature is not standard Base64 with padding ({e}); base64url is \
                     refused by iOS clients"
                ),
            })
    }

    /// The raw signature bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The signature as standard Base64 with padding, as `sig` in `expo-signature` carries it.
    #[must_use]
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}
