//! The binaries the tests run: `oneha` (this package, so cargo builds it for the tests) and
//! `oneha-testkit` (package `oneha-testkit` in `testkit/`, which cargo does not build for
//! this package's tests: `cargo build --workspace --bins`, or `make build`, builds it).

use std::path::Path;
use std::sync::OnceLock;

/// The `oneha` binary of this build.
pub const ONEHA: &str = env!("CARGO_BIN_EXE_oneha");

/// The `oneha-testkit` binary of this build: next to [`ONEHA`] (same profile). Panics, saying
/// what to run, if it has not been built.
pub fn testkit() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(ONEHA).with_file_name("oneha-testkit");
        if !path.is_file() {
            let release = Path::new(ONEHA)
                .parent()
                .is_some_and(|d| d.ends_with("release"));
            let flag = if release { " --release" } else { "" };
            panic!(
                "the test kit binary {} is missing: it belongs to the `oneha-testkit` package, \
                 which `cargo test`/`cargo bench` of this package do not build; run \
                 `cargo build{flag} --workspace --bins` (or `make build`) first",
                path.display()
            );
        }
        path.to_string_lossy().into_owned()
    })
}
