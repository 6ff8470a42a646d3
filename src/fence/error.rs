//! Why a fence operation did not succeed, worded to point at the cause.

use std::net::SocketAddr;
use std::time::Duration;

use crate::fence::xvm::HashType;

/// A fencing failure. Every message names what went wrong and what to check; none contains
/// a key or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The configuration does not allow this operation.
    #[error("{0}")]
    Config(String),
    /// No fence_virtd called back before the timeout.
    #[error(
        "no fence_virtd answered within {timeout:?} (request {op} for `{domain}` sent to \
         {group} from {source_addr}, {sends} time(s)): check that the key file matches the \
         host's, that the hash setting ({hash}) is at least the host's `hash`, that multicast \
         reaches the host, and that UDP {port} is open on the host and TCP {port} on this node"
    )]
    NoCallback {
        /// Operation name.
        op: &'static str,
        /// Domain requested.
        domain: String,
        /// Group and port.
        group: SocketAddr,
        /// Address sent from.
        source_addr: std::net::IpAddr,
        /// Our hash.
        hash: HashType,
        /// The port.
        port: u16,
        /// How long we waited.
        timeout: Duration,
        /// Datagrams sent.
        sends: u32,
    },
    /// The callback came but the challenge-response failed.
    #[error(
        "fence_virtd at {peer} called back but authentication failed ({detail}): the auth \
         hash (ours: {auth}) or the key differ from the host's `auth`/`key_file`"
    )]
    Auth {
        /// The daemon's address.
        peer: SocketAddr,
        /// Our auth hash.
        auth: HashType,
        /// What exactly failed.
        detail: String,
    },
    /// The daemon answered with a failure code.
    #[error("fence_virtd at {peer} answered {op} for `{domain}` with {code}: {meaning}{hint}")]
    Refused {
        /// The daemon's address.
        peer: SocketAddr,
        /// Operation name.
        op: &'static str,
        /// Domain requested.
        domain: String,
        /// Response byte.
        code: u8,
        /// What the code means.
        meaning: &'static str,
        /// Extra advice.
        hint: &'static str,
    },
    /// The connection broke or a reply could not be parsed after authentication.
    #[error("fence_virtd at {peer}: {detail}")]
    Protocol {
        /// The daemon's address.
        peer: SocketAddr,
        /// What went wrong.
        detail: String,
    },
    /// A local socket or process operation failed.
    #[error("{0}")]
    Io(String),
    /// A fence agent or ssh command did not finish in time and was killed.
    #[error("{what} did not finish within {timeout:?} and was killed")]
    Timeout {
        /// Which program.
        what: String,
        /// The limit.
        timeout: Duration,
    },
    /// A fence agent or ssh command reported failure.
    #[error("{what} failed{code}: {detail}")]
    Failed {
        /// Which program and action.
        what: String,
        /// ` (exit N)` or empty.
        code: String,
        /// Its last stderr lines, secrets removed.
        detail: String,
    },
    /// The method cannot do this action.
    #[error("{method} cannot do `{action}`")]
    Unsupported {
        /// Method name.
        method: &'static str,
        /// Action name.
        action: &'static str,
    },
}

impl FenceError {
    /// True when the failure was a timeout (no answer), as opposed to an explicit failure.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            FenceError::NoCallback { .. } | FenceError::Timeout { .. }
        )
    }
}
