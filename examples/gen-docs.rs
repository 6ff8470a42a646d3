//! Generates the shell completions (bash, zsh, fish) and man pages of `oneha` from its CLI
//! definition, for the Debian package (`make deb`):
//! `cargo run --example gen-docs -- OUT_DIR` writes `OUT_DIR/completions/` and
//! `OUT_DIR/man/` (one page per command and subcommand).

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// Writes the completions and man pages below `out`; returns the files written.
pub fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = oneha::cli::Cli::command();
    cmd.build();
    let completions = out.join("completions");
    let man = out.join("man");
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    let mut files = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        files.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "oneha",
            &completions,
        )?);
    }
    clap_mangen::generate_to(cmd, &man)?;
    for e in std::fs::read_dir(&man)? {
        let path = e?.path();
        // clap's implicit `help` subcommand needs no pages of its own.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("oneha-help") {
            std::fs::remove_file(&path)?;
        } else {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[allow(dead_code)] // tests include this file for `generate` only
fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: gen-docs OUT_DIR");
        std::process::exit(2);
    };
    match generate(Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
        }
        Err(e) => {
            eprintln!(
                "gen-docs: cannot write to {}: {e}",
                Path::new(&out).display()
            );
            std::process::exit(1);
        }
    }
}
