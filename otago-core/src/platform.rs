//! The two platforms an Expo update targets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A platform an update is built for; the value of the `expo-platform` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple iOS.
    Ios,
    /// Google Android.
    Android,
}

impl Platform {
    /// Both platforms, in a stable order.
    pub const ALL: [Self; 2] = [Self::Ios, Self::Android];

    /// The lowercase name used on the wire and in `metadata.json`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Android => "android",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ios" => Ok(Self::Ios),
            "android" => Ok(Self::Android),
            other => Err(Error::BadHeader {
                header: "expo-platform",
                problem: format!(
                    "`{}` is not a platform; use `ios` or `android`",
                    other.escape_debug()
                ),
                status: 400,
            }),
        }
    }
}
