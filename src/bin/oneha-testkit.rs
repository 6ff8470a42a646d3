//! Test-only programs used by tests/ and `make demo`. Not installed by packages.
fn main() {
    eprintln!("oneha-testkit: no program given");
    std::process::exit(2);
}
