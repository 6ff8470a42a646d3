//! Peer authentication: the cluster key, and the HMAC that every peer frame carries.
//!
//! Each stream starts with a fresh random challenge from the server. Every frame the client
//! sends carries `HMAC-SHA256(key, framing)` where the framing binds the challenge, the
//! cluster name, sender and receiver ids, the frame's sequence number and its content, each
//! length-prefixed. A frame is accepted only with a valid MAC and a sequence number one above
//! the previous one, so frames cannot be forged, replayed (another stream has another
//! challenge) or reordered.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a server challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Key files shorter than this are refused.
pub const MIN_KEY_LEN: usize = 16;
const DOMAIN: &[u8] = b"oneha-peer-v1";

/// The cluster key (never printed).
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Cannot read or write it.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read it.
    #[error(
        "{path} is readable by group or others (mode {mode:o}); the cluster key must be \
         private: run `chmod 600 {path}`"
    )]
    Permissions {
        /// The key file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// Too short to be a key.
    #[error(
        "{path} holds {len} bytes; a cluster key needs at least {MIN_KEY_LEN}: create one with \
         `oneha keygen {path}`"
    )]
    TooShort {
        /// The key file.
        path: String,
        /// Its length.
        len: usize,
    },
    /// Refusing to overwrite.
    #[error("{path} exists; refusing to overwrite a cluster key (remove it first)")]
    Exists {
        /// The key file.
        path: String,
    },
}

/// Checks that group and others cannot read or write the key file at `path` (the agent
/// refuses such a key, and `oneha check-config` reports it).
pub fn check_private(path: &Path) -> Result<(), KeyError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: shown, mode });
    }
    Ok(())
}

impl ClusterKey {
    /// Loads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<ClusterKey, KeyError> {
        let shown = path.display().to_string();
        check_private(path)?;
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?;
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort {
                path: shown,
                len: bytes.len(),
            });
        }
        Ok(ClusterKey(bytes))
    }

    /// A key from bytes (tests, and `keygen`).
    pub fn from_bytes(bytes: Vec<u8>) -> ClusterKey {
        ClusterKey(bytes)
    }

    /// Writes a new random 64-byte key to `path` with mode 0600; never overwrites.
    pub fn generate(path: &Path) -> Result<(), KeyError> {
        let shown = path.display().to_string();
        let mut key = [0u8; 64];
        rand::rng().fill_bytes(&mut key);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists {
                        path: shown.clone(),
                    }
                } else {
                    KeyError::Io {
                        path: shown.clone(),
                        source,
                    }
                }
            })?;
        f.write_all(&key)
            .and_then(|_| f.sync_all())
            .map_err(|source| KeyError::Io {
                path: shown,
                source,
            })
    }

    /// The MAC of one frame.
    pub fn frame_mac(&self, f: &FrameParts<'_>) -> Vec<u8> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        f.feed(&mut mac);
        mac.finalize().into_bytes().to_vec()
    }

    /// Checks a frame's MAC in constant time.
    pub fn verify(&self, f: &FrameParts<'_>, tag: &[u8]) -> bool {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        f.feed(&mut mac);
        mac.verify_slice(tag).is_ok()
    }
}

/// The authenticated content of a peer frame.
pub struct FrameParts<'a> {
    /// The server's challenge for this stream.
    pub challenge: &'a [u8],
    /// Cluster name.
    pub cluster: &'a str,
    /// Sender id.
    pub from: u64,
    /// Receiver id.
    pub to: u64,
    /// Sequence number in the stream.
    pub seq: u64,
    /// Raft messages (raft-rs encoding).
    pub raft: &'a [Vec<u8>],
    /// Sender's gossip.
    pub gossip: &'a [u8],
}

impl FrameParts<'_> {
    fn feed(&self, mac: &mut HmacSha256) {
        let mut lp = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_le_bytes());
            mac.update(bytes);
        };
        lp(DOMAIN);
        lp(self.challenge);
        lp(self.cluster.as_bytes());
        lp(&self.from.to_le_bytes());
        lp(&self.to.to_le_bytes());
        lp(&self.seq.to_le_bytes());
        lp(&(self.raft.len() as u64).to_le_bytes());
        for m in self.raft {
            lp(m);
        }
        lp(self.gossip);
    }
}

/// A fresh random challenge.
pub fn new_challenge() -> Vec<u8> {
    let mut c = vec![0u8; CHALLENGE_LEN];
    rand::rng().fill_bytes(&mut c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(challenge: &'a [u8], raft: &'a [Vec<u8>]) -> FrameParts<'a> {
        FrameParts {
            challenge,
            cluster: "one",
            from: 1,
            to: 2,
            seq: 7,
            raft,
            gossip: b"{}",
        }
    }

    #[test]
    fn mac_binds_every_field() {
        let key = ClusterKey::from_bytes(b"0123456789abcdef".to_vec());
        let ch = new_challenge();
        let raft = vec![b"m1".to_vec(), b"m2".to_vec()];
        let tag = key.frame_mac(&parts(&ch, &raft));
        assert!(key.verify(&parts(&ch, &raft), &tag));
        // Another key, challenge, sequence number, or content: rejected.
        let other = ClusterKey::from_bytes(b"0123456789abcdeX".to_vec());
        assert!(!other.verify(&parts(&ch, &raft), &tag));
        assert!(!key.verify(&parts(&new_challenge(), &raft), &tag));
        let mut p = parts(&ch, &raft);
        p.seq = 8;
        assert!(!key.verify(&p, &tag));
        let mut p = parts(&ch, &raft);
        p.to = 3;
        assert!(!key.verify(&p, &tag));
        let moved = vec![b"m1m".to_vec(), b"2".to_vec()];
        assert!(!key.verify(&parts(&ch, &moved), &tag), "length prefixes");
        assert!(!key.verify(&parts(&ch, &raft), &tag[..31]));
    }

    #[test]
    fn keygen_writes_a_private_key_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.key");
        ClusterKey::generate(&path).expect("generate");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(ClusterKey::load(&path).is_ok());
        let again = ClusterKey::generate(&path).expect_err("overwrite");
        assert!(
            again.to_string().contains("refusing to overwrite"),
            "{again}"
        );
    }

    #[test]
    fn readable_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.key");
        std::fs::write(&path, [7u8; 32]).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = ClusterKey::load(&path).expect_err("readable");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, [7u8; 4]).expect("write");
        let e = ClusterKey::load(&path).expect_err("short");
        assert!(e.to_string().contains("oneha keygen"), "{e}");
    }
}
