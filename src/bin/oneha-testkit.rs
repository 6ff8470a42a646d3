//! Test-only programs used by tests/ and `make demo`. Not installed by packages.

use clap::{Parser, Subcommand};

/// oneha's test programs.
#[derive(Parser)]
#[command(name = "oneha-testkit")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A fake oned (XML-RPC on loopback) serving a VM pool, with injectable faults.
    FakeOned(oneha::testkit::fake_oned_cli::FakeOnedArgs),
    /// `oneha stuck-vms` without a config file (until the main binary has it).
    StuckVms(oneha::opennebula::StuckVmsArgs),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::FakeOned(args) => oneha::testkit::fake_oned_cli::run(&args).await,
        Cmd::StuckVms(args) => oneha::opennebula::run(&args, None).await,
    };
    std::process::exit(code);
}
