//! The fence_xvm / fence_virtd wire protocol: the 176-byte request, its signature, the
//! challenge-response and the host list. Pure code (no I/O), shared by the client
//! ([`crate::fence::xvm_client`]) and the test fence daemon.
//!
//! Layout and rules follow `fence_xvm-protocol.md`: port, seqno and family are little-endian,
//! the callback address is in network order, and the signature is `H(key || packet)` taken
//! with the 64-byte hash field zeroed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

pub use crate::config::fence_xvm::{DEFAULT_GROUP_V4, DEFAULT_PORT, DOMAIN_MAX, HashType};

/// Length of a request datagram.
pub const REQUEST_LEN: usize = 176;
/// Length of a challenge, and of a (zero padded) response to one.
pub const CHALLENGE_LEN: usize = 64;
/// Length of the hash field of a request.
pub const HASH_FIELD_LEN: usize = 64;
/// Length of one host-list record.
pub const LIST_RECORD_LEN: usize = 130;
/// Key bytes beyond this are ignored, as by fence_virtd.
pub const MAX_KEY_LEN: usize = 4096;
/// Request flag: the domain field holds a UUID.
pub const FLAG_UUID: u8 = 0x1;

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

// The wire side of the hash type (codes, digests); its names are the config's.
impl HashType {
    /// Wire code (0..=3).
    pub fn code(self) -> u8 {
        match self {
            HashType::None => 0,
            HashType::Sha1 => 1,
            HashType::Sha256 => 2,
            HashType::Sha512 => 3,
        }
    }
    /// The hash type with this wire code.
    pub fn from_code(code: u8) -> Option<HashType> {
        match code {
            0 => Some(HashType::None),
            1 => Some(HashType::Sha1),
            2 => Some(HashType::Sha256),
            3 => Some(HashType::Sha512),
            _ => None,
        }
    }
    /// `H(key || data)`, zero padded to 64 bytes (all zero for `none`).
    pub fn keyed_digest(self, key: &[u8], data: &[u8]) -> [u8; HASH_FIELD_LEN] {
        let mut out = [0u8; HASH_FIELD_LEN];
        let digest: Vec<u8> = match self {
            HashType::None => Vec::new(),
            HashType::Sha1 => Sha1::new()
                .chain_update(key)
                .chain_update(data)
                .finalize()
                .to_vec(),
            HashType::Sha256 => Sha256::new()
                .chain_update(key)
                .chain_update(data)
                .finalize()
                .to_vec(),
            HashType::Sha512 => Sha512::new()
                .chain_update(key)
                .chain_update(data)
                .finalize()
                .to_vec(),
        };
        out[..digest.len()].copy_from_slice(&digest);
        out
    }
}

/// A request code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Do nothing (code 0).
    Null,
    /// Power the domain off.
    Off,
    /// Power cycle the domain (leaves a powered-off domain off).
    Reboot,
    /// Power the domain on.
    On,
    /// Report the domain's power state.
    Status,
    /// Report whether the daemon itself works.
    Monitor,
    /// List the domains the daemon knows.
    List,
}

impl Op {
    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            Op::Null => 0,
            Op::Off => 1,
            Op::Reboot => 2,
            Op::On => 3,
            Op::Status => 4,
            Op::Monitor => 5,
            Op::List => 6,
        }
    }
    /// The op with this wire code.
    pub fn from_code(code: u8) -> Option<Op> {
        [
            Op::Null,
            Op::Off,
            Op::Reboot,
            Op::On,
            Op::Status,
            Op::Monitor,
            Op::List,
        ]
        .into_iter()
        .find(|o| o.code() == code)
    }
    /// Lower-case name (`off`, `list`...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Null => "null",
            Op::Off => "off",
            Op::Reboot => "reboot",
            Op::On => "on",
            Op::Status => "status",
            Op::Monitor => "monitor",
            Op::List => "list",
        }
    }
}

/// Response byte: success (or "on" for status).
pub const RESP_SUCCESS: u8 = 0;
/// Response byte: the operation failed (unknown domain, backend error).
pub const RESP_FAIL: u8 = 1;
/// Response byte: the domain is off (status).
pub const RESP_OFF: u8 = 2;
/// Response byte: permission denied.
pub const RESP_PERM: u8 = 3;
/// Response byte: host-list records follow.
pub const RESP_HOSTLIST: u8 = 253;

/// What a response byte means, for messages.
pub fn response_meaning(code: u8) -> &'static str {
    match code {
        RESP_SUCCESS => "success",
        RESP_FAIL => "fail (unknown domain, or the host's backend could not do it)",
        RESP_OFF => "off",
        RESP_PERM => "permission denied (this guest may not fence that domain)",
        RESP_HOSTLIST => "host list",
        _ => "unknown response code",
    }
}

/// Why bytes are not a valid request or record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Wrong size.
    #[error("expected {expected} bytes, found {found}")]
    Length {
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// Unknown request code.
    #[error("unknown request code {0}")]
    Op(u8),
    /// Unknown hash type code.
    #[error("unknown hash type code {0}")]
    Hash(u8),
    /// Family and address length disagree or are unknown.
    #[error(
        "address family {family} with address length {addrlen} is not IPv4 (2/4) or IPv6 (10/16)"
    )]
    Family {
        /// The family field.
        family: u32,
        /// The addrlen field.
        addrlen: u8,
    },
    /// A name field is not a NUL-terminated UTF-8 string.
    #[error("the {0} field is not a NUL-terminated UTF-8 string")]
    Text(&'static str),
    /// A domain that does not fit.
    #[error("domain `{0}` is longer than 63 bytes")]
    DomainTooLong(String),
}

/// A decoded (or to-be-encoded) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do.
    pub op: Op,
    /// How the request is signed.
    pub hash: HashType,
    /// The domain field holds a UUID.
    pub uuid: bool,
    /// Domain name or UUID (empty for list/monitor).
    pub domain: String,
    /// Where the daemon calls back.
    pub address: IpAddr,
    /// The callback TCP port.
    pub port: u16,
    /// Random bytes (zero when unsigned).
    pub random: [u8; 6],
    /// One value per fencing attempt.
    pub seqno: u32,
    /// The hash field as carried.
    pub digest: [u8; HASH_FIELD_LEN],
}

impl Request {
    /// A request signed with `key`, with fresh random bytes (none when `hash` is none).
    #[allow(clippy::too_many_arguments)]
    pub fn signed(
        op: Op,
        hash: HashType,
        key: &[u8],
        domain: &str,
        uuid: bool,
        address: IpAddr,
        port: u16,
        seqno: u32,
    ) -> Result<Request, WireError> {
        if domain.len() > DOMAIN_MAX || domain.contains('\0') {
            return Err(WireError::DomainTooLong(domain.to_string()));
        }
        let random = if hash == HashType::None {
            [0u8; 6]
        } else {
            rand::random()
        };
        let mut r = Request {
            op,
            hash,
            uuid,
            domain: domain.to_string(),
            address,
            port,
            random,
            seqno,
            digest: [0u8; HASH_FIELD_LEN],
        };
        r.sign(key);
        Ok(r)
    }

    /// Recomputes the hash field from the other fields and `key`.
    pub fn sign(&mut self, key: &[u8]) {
        self.digest = [0u8; HASH_FIELD_LEN];
        let unsigned = self.encode();
        self.digest = self.hash.keyed_digest(key, &unsigned);
    }

    /// The 176 bytes on the wire.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0] = self.op.code();
        b[1] = self.hash.code();
        b[3] = if self.uuid { FLAG_UUID } else { 0 };
        let name = prefix(&self.domain, DOMAIN_MAX).as_bytes();
        b[4..4 + name.len()].copy_from_slice(name);
        let family = match self.address {
            IpAddr::V4(a) => {
                b[2] = 4;
                b[68..72].copy_from_slice(&a.octets());
                AF_INET
            }
            IpAddr::V6(a) => {
                b[2] = 16;
                b[68..84].copy_from_slice(&a.octets());
                AF_INET6
            }
        };
        b[96..98].copy_from_slice(&self.port.to_le_bytes());
        b[98..104].copy_from_slice(&self.random);
        b[104..108].copy_from_slice(&self.seqno.to_le_bytes());
        b[108..112].copy_from_slice(&family.to_le_bytes());
        b[112..176].copy_from_slice(&self.digest);
        b
    }

    /// Parses a datagram. Does not check the signature: see [`verify_request`].
    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        let b: &[u8; REQUEST_LEN] = bytes.try_into().map_err(|_| WireError::Length {
            expected: REQUEST_LEN,
            found: bytes.len(),
        })?;
        let op = Op::from_code(b[0]).ok_or(WireError::Op(b[0]))?;
        let hash = HashType::from_code(b[1]).ok_or(WireError::Hash(b[1]))?;
        let addrlen = b[2];
        let family = u32::from_le_bytes([b[108], b[109], b[110], b[111]]);
        let address = match (family, addrlen) {
            (AF_INET, 4) => IpAddr::V4(Ipv4Addr::new(b[68], b[69], b[70], b[71])),
            (AF_INET6, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[68..84]);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(WireError::Family { family, addrlen }),
        };
        let mut random = [0u8; 6];
        random.copy_from_slice(&b[98..104]);
        let mut digest = [0u8; HASH_FIELD_LEN];
        digest.copy_from_slice(&b[112..176]);
        Ok(Request {
            op,
            hash,
            uuid: b[3] & FLAG_UUID != 0,
            domain: c_string(&b[4..68], "domain")?,
            address,
            port: u16::from_le_bytes([b[96], b[97]]),
            random,
            seqno: u32::from_le_bytes([b[104], b[105], b[106], b[107]]),
            digest,
        })
    }
}

/// Checks a raw request's signature against `key` with the hash type the packet names,
/// over the exact received bytes (as fence_virtd does). Unsigned packets verify trivially;
/// the caller enforces its minimum hash.
pub fn verify_request(bytes: &[u8], key: &[u8]) -> bool {
    let Ok(b) = <&[u8; REQUEST_LEN]>::try_from(bytes) else {
        return false;
    };
    let Some(hash) = HashType::from_code(b[1]) else {
        return false;
    };
    if hash == HashType::None {
        return true;
    }
    let mut unsigned = *b;
    unsigned[112..176].fill(0);
    constant_time_eq(&hash.keyed_digest(key, &unsigned), &b[112..176])
}

/// A fresh random challenge.
pub fn new_challenge() -> [u8; CHALLENGE_LEN] {
    let mut c = [0u8; CHALLENGE_LEN];
    rand::Rng::fill(&mut rand::rng(), &mut c[..]);
    c
}

/// The answer to `challenge`: `H(key || challenge)` zero padded to 64 bytes.
pub fn challenge_response(
    auth: HashType,
    key: &[u8],
    challenge: &[u8; CHALLENGE_LEN],
) -> [u8; CHALLENGE_LEN] {
    auth.keyed_digest(key, challenge)
}

/// True when `answer` is the right response to `challenge` (all 64 bytes compared).
pub fn check_response(
    auth: HashType,
    key: &[u8],
    challenge: &[u8; CHALLENGE_LEN],
    answer: &[u8],
) -> bool {
    constant_time_eq(&challenge_response(auth, key, challenge), answer)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Power state of a listed domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Running.
    On,
    /// Not running.
    Off,
}

/// One domain of a host list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// Domain name.
    pub domain: String,
    /// Domain UUID.
    pub uuid: String,
    /// Power state.
    pub state: PowerState,
}

/// Parses one 130-byte record: `None` for the end record (empty domain). fence_virtd does not
/// clear its record buffer, so bytes after each field's NUL (and the pad byte) may be garbage
/// and are ignored.
pub fn decode_host_record(bytes: &[u8]) -> Result<Option<HostEntry>, WireError> {
    let b: &[u8; LIST_RECORD_LEN] = bytes.try_into().map_err(|_| WireError::Length {
        expected: LIST_RECORD_LEN,
        found: bytes.len(),
    })?;
    if b[0] == 0 {
        return Ok(None);
    }
    Ok(Some(HostEntry {
        domain: lossy_c_string(&b[0..64]),
        uuid: lossy_c_string(&b[64..128]),
        state: if b[128] == 1 {
            PowerState::On
        } else {
            PowerState::Off
        },
    }))
}

fn lossy_c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Encodes one host-list record (the test daemon's side); a name longer than
/// [`DOMAIN_MAX`] bytes is cut at a character boundary.
pub fn encode_host_record(e: &HostEntry) -> [u8; LIST_RECORD_LEN] {
    let mut b = [0u8; LIST_RECORD_LEN];
    let d = prefix(&e.domain, DOMAIN_MAX).as_bytes();
    b[..d.len()].copy_from_slice(d);
    let u = prefix(&e.uuid, DOMAIN_MAX).as_bytes();
    b[64..64 + u.len()].copy_from_slice(u);
    b[128] = u8::from(e.state == PowerState::On);
    b
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary (a
/// name cut to fit a record stays valid UTF-8).
fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn c_string(field: &[u8], name: &'static str) -> Result<String, WireError> {
    let end = field
        .iter()
        .position(|&c| c == 0)
        .ok_or(WireError::Text(name))?;
    String::from_utf8(field[..end].to_vec()).map_err(|_| WireError::Text(name))
}

/// Reads a fence_xvm key file (at most [`MAX_KEY_LEN`] bytes are used). The key is never
/// logged or shown.
pub fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    // A device such as /dev/zero would never end: check what the path is first.
    crate::config::fencing_check::check_xvm_key_file(path)?;
    let mut key = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_LEN as u64).read_to_end(&mut key))
        .map_err(|e| {
            format!(
                "cannot read the fence_xvm key file {}: {e}; copy the hypervisor's key \
                 (fence_virtd's key_file) to this path",
                path.display()
            )
        })?;
    if key.is_empty() {
        return Err(format!(
            "the fence_xvm key file {} is empty; copy the hypervisor's key to this path",
            path.display()
        ));
    }
    Ok(key)
}

#[cfg(test)]
#[path = "xvm_tests.rs"]
mod tests;
