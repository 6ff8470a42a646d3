//! Test-only programs used by tests/ and `make demo`. Not installed by packages.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("fence-daemon") => oneha::testkit::fence_server::main(&args[1..]),
        _ => {
            eprintln!("oneha-testkit: no program given (programs: fence-daemon)");
            2
        }
    };
    std::process::exit(code);
}
