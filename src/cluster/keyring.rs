//! The keys the peer transport accepts: the current cluster key and, during a rotation, the
//! next one, each turned into a Noise PSK bound to the cluster name and protocol version.
//! `reload` re-reads both files (SIGHUP, `oneha reload-keys`); a bad file keeps the old keys.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::auth::{ClusterKey, KeyError};
use super::secure::{PROTOCOL_VERSION, Psk};

/// The PSK for `cluster` under `key`: a transport key of another cluster or another protocol
/// version differs even with the same key file.
pub fn derive_psk(key: &ClusterKey, cluster: &str) -> Psk {
    let label = format!("oneha peer transport v{PROTOCOL_VERSION} noise psk\0cluster={cluster}");
    Psk(key.derive(label.as_bytes()))
}

/// The key files of a node.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// `key_file`: the key used to open connections.
    pub current: PathBuf,
    /// `next_key_file`: accepted too, and tried when the current key is refused; absent
    /// outside a rotation.
    pub next: PathBuf,
}

/// The loaded keys.
#[derive(Debug, Clone)]
struct Loaded {
    psks: Arc<Vec<Psk>>,
    summary: String,
}

/// The keys shared by the transport's server and clients.
#[derive(Debug)]
pub struct KeyRing {
    cluster: String,
    files: Option<KeyFiles>,
    loaded: RwLock<Loaded>,
}

impl KeyRing {
    /// Loads the key files (the next one may be missing).
    pub fn load(cluster: &str, files: KeyFiles) -> Result<KeyRing, String> {
        let loaded = load(cluster, &files)?;
        Ok(KeyRing {
            cluster: cluster.to_string(),
            files: Some(files),
            loaded: RwLock::new(loaded),
        })
    }

    /// Fixed keys (tests, tools): `keys[0]` current, `keys[1]` next.
    pub fn fixed(cluster: &str, keys: &[ClusterKey]) -> KeyRing {
        let psks = keys.iter().map(|k| derive_psk(k, cluster)).collect();
        KeyRing {
            cluster: cluster.to_string(),
            files: None,
            loaded: RwLock::new(Loaded {
                psks: Arc::new(psks),
                summary: "fixed keys".into(),
            }),
        }
    }

    /// The PSKs to accept, the current key's first.
    pub fn psks(&self) -> Arc<Vec<Psk>> {
        match self.loaded.read() {
            Ok(l) => l.psks.clone(),
            Err(poisoned) => poisoned.into_inner().psks.clone(),
        }
    }

    /// What is loaded (key fingerprints, never keys).
    pub fn summary(&self) -> String {
        match self.loaded.read() {
            Ok(l) => l.summary.clone(),
            Err(poisoned) => poisoned.into_inner().summary.clone(),
        }
    }

    /// Re-reads the key files. On error the keys in use stay and the error says why.
    pub fn reload(&self) -> Result<String, String> {
        let Some(files) = &self.files else {
            return Ok(self.summary());
        };
        let fresh = load(&self.cluster, files)
            .map_err(|e| format!("{e}; still using the keys loaded before"))?;
        let summary = fresh.summary.clone();
        match self.loaded.write() {
            Ok(mut l) => *l = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(summary)
    }
}

fn load(cluster: &str, files: &KeyFiles) -> Result<Loaded, String> {
    let current = ClusterKey::load(&files.current).map_err(|e| format!("key_file: {e}"))?;
    let next = load_optional(&files.next).map_err(|e| format!("next_key_file: {e}"))?;
    let mut summary = format!(
        "current key {} ({})",
        current.fingerprint(),
        files.current.display()
    );
    let mut psks = vec![derive_psk(&current, cluster)];
    if let Some(next) = next {
        if next.fingerprint() == current.fingerprint() {
            summary.push_str("; next key is the same key (ignored)");
        } else {
            summary.push_str(&format!(
                ", next key {} ({})",
                next.fingerprint(),
                files.next.display()
            ));
            psks.push(derive_psk(&next, cluster));
        }
    }
    Ok(Loaded {
        psks: Arc::new(psks),
        summary,
    })
}

fn load_optional(path: &Path) -> Result<Option<ClusterKey>, KeyError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => ClusterKey::load(path).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_key(path: &Path, byte: u8) {
        std::fs::write(path, [byte; 32]).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    #[test]
    fn psk_depends_on_cluster_name() {
        let k = ClusterKey::from_bytes(vec![1; 32]);
        assert_ne!(derive_psk(&k, "a"), derive_psk(&k, "b"));
        assert_eq!(derive_psk(&k, "a"), derive_psk(&k, "a"));
    }

    #[test]
    fn next_key_is_optional_and_reload_keeps_old_keys_on_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = KeyFiles {
            current: dir.path().join("cluster.key"),
            next: dir.path().join("cluster.key.next"),
        };
        write_key(&files.current, 1);
        let ring = KeyRing::load("c", files.clone()).expect("load");
        assert_eq!(ring.psks().len(), 1);
        write_key(&files.next, 2);
        let s = ring.reload().expect("reload");
        assert!(s.contains("next key"), "{s}");
        assert_eq!(ring.psks().len(), 2);
        // A world-readable next key: refused, both keys stay.
        std::fs::set_permissions(&files.next, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let e = ring.reload().expect_err("readable");
        assert!(
            e.contains("next_key_file") && e.contains("chmod 600"),
            "{e}"
        );
        assert!(e.contains("still using"), "{e}");
        assert_eq!(ring.psks().len(), 2);
        std::fs::remove_file(&files.next).expect("rm");
        ring.reload().expect("reload");
        assert_eq!(ring.psks().len(), 1);
        std::fs::remove_file(&files.current).expect("rm");
        let e = ring.reload().expect_err("missing");
        assert!(e.starts_with("key_file:"), "{e}");
        assert_eq!(ring.psks().len(), 1);
    }
}
