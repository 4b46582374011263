//! Directives: the answers that tell a v1 client to do something other than download an update.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Timestamp};

/// A directive body, as the multipart `directive` part carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Directive {
    /// The client already runs the newest update.
    NoUpdateAvailable,
    /// The client should go back to the update embedded in its binary.
    RollBackToEmbedded {
        /// Parameters of the rollback.
        parameters: RollBackParameters,
    },
}

/// The parameters of a `rollBackToEmbedded` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollBackParameters {
    /// When the rollback was decided; must be later than the update it supersedes.
    pub commit_time: Timestamp,
}

impl Directive {
    /// A `rollBackToEmbedded` directive committed at `commit_time`.
    #[must_use]
    pub fn roll_back_to_embedded(commit_time: Timestamp) -> Self {
        Self::RollBackToEmbedded {
            parameters: RollBackParameters { commit_time },
        }
    }

    /// The exact bytes to sign and serve.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses directive bytes (e.g. a signed rollback a deployer publishes).
    ///
    /// # Errors
    /// [`Error::InvalidManifest`] when the bytes are not one of the two directives clients know.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|err| Error::InvalidManifest {
            reason: format!("not a directive (`noUpdateAvailable` or `rollBackToEmbedded` with commitTime): {err}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_render_as_the_client_expects() {
        assert_eq!(
            Directive::NoUpdateAvailable.to_bytes(),
            br#"{"type":"noUpdateAvailable"}"#
        );
        let rollback = Directive::roll_back_to_embedded(
            Timestamp::from_unix_millis(1_735_787_045_678).unwrap(),
        );
        assert_eq!(
            rollback.to_bytes(),
            br#"{"type":"rollBackToEmbedded","parameters":{"commitTime":"2025-01-02T03:04:05.678Z"}}"#
        );
        assert_eq!(Directive::parse(&rollback.to_bytes()).unwrap(), rollback);
        assert!(Directive::parse(br#"{"type":"rollBackToEmbedded"}"#).is_err());
        assert!(Directive::parse(br#"{"type":"somethingElse"}"#).is_err());
    }
}
