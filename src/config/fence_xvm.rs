//! The fence_xvm settings the `fencing:` section names: the hash types (`hash`, `auth`), the
//! default multicast group and port, the longest domain name. The wire protocol that uses
//! them is `fence::xvm`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest domain name or UUID the request can carry (64 bytes with the final NUL).
pub const DOMAIN_MAX: usize = 63;
/// The multicast group fence_virtd listens on by default (IPv4).
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(225, 0, 0, 12);
/// The UDP request port and the client's TCP callback port.
pub const DEFAULT_PORT: u16 = 1229;

/// Hash used to sign requests (`hash`) or to answer challenges (`auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashType {
    /// No signature / no challenge.
    None,
    /// SHA-1 (20 bytes).
    Sha1,
    /// SHA-256 (32 bytes), the stock default.
    Sha256,
    /// SHA-512 (64 bytes).
    Sha512,
}

impl HashType {
    /// Name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            HashType::None => "none",
            HashType::Sha1 => "sha1",
            HashType::Sha256 => "sha256",
            HashType::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for HashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashType {
    type Err = String;
    fn from_str(s: &str) -> Result<HashType, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(HashType::None),
            "sha1" => Ok(HashType::Sha1),
            "sha256" => Ok(HashType::Sha256),
            "sha512" => Ok(HashType::Sha512),
            other => Err(format!(
                "unknown hash `{other}`; use one of none, sha1, sha256, sha512"
            )),
        }
    }
}
