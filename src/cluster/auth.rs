//! The cluster key: loading (private files only), generating, and deriving from it the keys
//! the peer transport uses (HKDF-SHA256, one label per use, so the raw key is never used
//! directly and a key derived for one use is useless for another).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

pub use crate::config::key_file::{KeyError, MIN_KEY_LEN, check_private};

/// HKDF salt for every key derived from the cluster key.
const SALT: &[u8] = b"oneha cluster key v1";

/// Exchanges the current and next key files atomically (`renameat2(RENAME_EXCHANGE)`), after
/// checking that both are usable keys: the key rotation's promote step.
pub fn swap_key_files(current: &Path, next: &Path) -> Result<(), KeyError> {
    ClusterKey::load(current)?;
    ClusterKey::load(next)?;
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        current,
        nix::fcntl::AT_FDCWD,
        next,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .map_err(|e| KeyError::Io {
        path: current.display().to_string(),
        source: std::io::Error::from(e),
    })
}

/// The cluster key (never printed).
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
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

    /// 32 bytes derived from the key for one use, named by `label` (HKDF-SHA256).
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(Some(SALT), &self.0)
            .expand(label, &mut out)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
        out
    }

    /// A short public fingerprint (12 hex digits, derived, not part of the key) so operators
    /// can compare keys across nodes without showing them.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.derive(b"oneha key fingerprint")[..6])
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn derived_keys_differ_by_label_and_key() {
        let key = ClusterKey::from_bytes(b"0123456789abcdef".to_vec());
        let other = ClusterKey::from_bytes(b"0123456789abcdeX".to_vec());
        assert_eq!(key.derive(b"a"), key.derive(b"a"));
        assert_ne!(key.derive(b"a"), key.derive(b"b"));
        assert_ne!(key.derive(b"a"), other.derive(b"a"));
        assert_ne!(key.fingerprint(), other.fingerprint());
        assert_eq!(key.fingerprint().len(), 12);
        assert!(!format!("{key:?}").contains("0123"));
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
    fn promote_swaps_current_and_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cur, next) = (dir.path().join("k"), dir.path().join("k.next"));
        ClusterKey::generate(&cur).expect("generate");
        let e = swap_key_files(&cur, &next).expect_err("no next key");
        assert!(e.to_string().contains("k.next"), "{e}");
        ClusterKey::generate(&next).expect("generate");
        let (a, b) = (
            ClusterKey::load(&cur).expect("load").fingerprint(),
            ClusterKey::load(&next).expect("load").fingerprint(),
        );
        swap_key_files(&cur, &next).expect("swap");
        assert_eq!(ClusterKey::load(&cur).expect("load").fingerprint(), b);
        assert_eq!(ClusterKey::load(&next).expect("load").fingerprint(), a);
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
