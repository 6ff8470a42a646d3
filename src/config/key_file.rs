//! The cluster key file (`key_file`, `next_key_file`): why one cannot be used, and the check
//! that it is private, which `check-config` runs and `cluster::auth` runs before loading it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Key files shorter than this are refused.
pub const MIN_KEY_LEN: usize = 16;

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
