//! The YAML config loader (`oneha check-config`, the agent at start): parse and validate,
//! and a config that loads prints (check-config's output) to a text that loads again and
//! prints the same. The key files the seeds name (`/tmp/oneha-fuzz/*.key`) are created
//! first, so that inputs get past the key checks to the rest of the validation.
#![no_main]

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use oneha::config::parse;

static KEYS: Once = Once::new();

fn make_keys() {
    let dir = Path::new("/tmp/oneha-fuzz");
    std::fs::create_dir_all(dir).expect("create /tmp/oneha-fuzz");
    for name in ["cluster.key", "fence_xvm.key"] {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0x42; 32]))
            .expect("write a fuzz key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod a fuzz key");
    }
}

fuzz_target!(|data: &[u8]| {
    KEYS.call_once(make_keys);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    if let Ok(config) = parse(path, text) {
        let printed = config.to_yaml();
        let again = parse(path, &printed).expect("check-config's output loads");
        assert_eq!(again.to_yaml(), printed);
    }
});
