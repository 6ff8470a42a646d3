//! The `oneha` command: a thin entry point; everything lives in the library.
fn main() {
    std::process::exit(oneha::cli::main());
}
