//! Test-only programs used by tests/ and `make demo`. Not installed by packages.

use clap::{Parser, Subcommand};

/// oneha's test programs (fake services and daemons the tests run).
#[derive(Parser)]
#[command(name = "oneha-testkit")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start and stop resources repeatedly and print the timings (benchmark).
    ResourceCycle(oneha_testkit::resource_cycle::CycleArgs),
    /// A TCP server that writes a name and closes (the test `opennebula` units).
    ServeName(oneha_testkit::serve::ServeArgs),
    /// Same as `oneha resource`: drive resources directly, inside a test node.
    Resource {
        #[command(flatten)]
        args: oneha::resources::cli::ResourceArgs,
        /// Config file (default: $ONEHA_CONFIG, then /etc/oneha/oneha.yaml).
        #[arg(long, short = 'c')]
        config: Option<std::path::PathBuf>,
    },
    /// A fake oned (XML-RPC on loopback) serving a VM pool, with injectable faults.
    FakeOned(oneha_testkit::fake_oned_cli::FakeOnedArgs),
    /// A fence_xvm-protocol test daemon (see `oneha-testkit fence-daemon --help`).
    FenceDaemon,
    /// Stand-in for the agent under deploy/oneha.service: sandbox checks, READY, watchdog.
    NotifyProbe(oneha_testkit::notify_probe::NotifyProbeArgs),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The fence daemon parses its own arguments.
    if args.get(1).map(String::as_str) == Some("fence-daemon") {
        std::process::exit(oneha_testkit::fence_server::main(&args[1..]));
    }
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::ResourceCycle(args) => runtime().block_on(oneha_testkit::resource_cycle::run(&args)),
        Cmd::ServeName(args) => oneha_testkit::serve::run(&args),
        Cmd::Resource { args, config } => {
            runtime().block_on(oneha::resources::cli::run(args, config.as_deref()))
        }
        Cmd::FakeOned(args) => runtime().block_on(oneha_testkit::fake_oned_cli::run(&args)),
        Cmd::FenceDaemon => 2,
        Cmd::NotifyProbe(args) => oneha_testkit::notify_probe::run(&args),
    };
    std::process::exit(code);
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oneha-testkit: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}
