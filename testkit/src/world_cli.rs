//! `oneha-testkit fake-oned --world FILE --state FILE`: the world's command-line options.

use std::path::PathBuf;

use super::world::Hook;
use super::world_handle::{WorldHandle, initial};

/// The world options of `oneha-testkit fake-oned`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorldArgs {
    /// A world file (YAML or JSON: settings, hosts, datastores, vms, hooks; see
    /// docs/testing.md). Serves a stateful world instead of a static VM pool.
    #[arg(long)]
    pub world: Option<PathBuf>,
    /// The state file: read at start when it exists (it wins over --world: a fake started
    /// after another continues its world), written atomically after every change.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// A HOST hook on STATE=ERROR running this command (like `onehook create`).
    #[arg(long)]
    pub hook_command: Option<PathBuf>,
    /// The hook's ARGUMENTS (`$TEMPLATE` is the base64 `<HOST>`), sent on stdin.
    #[arg(long, default_value = "$TEMPLATE -m -p 5")]
    pub hook_arguments: String,
    /// Where hook runs are logged (JSON lines: exit code, stdout, stderr).
    #[arg(long)]
    pub hook_log: Option<PathBuf>,
}

/// The world the options describe; `None` when neither --world nor --state is given.
pub fn world(args: &WorldArgs) -> Result<Option<WorldHandle>, String> {
    if args.world.is_none() && args.state.is_none() {
        return Ok(None);
    }
    let mut w = initial(args.world.as_deref(), args.state.as_deref())?;
    if let Some(log) = &args.hook_log {
        w.settings.hook_log = Some(log.clone());
    }
    if let Some(command) = &args.hook_command
        && !w.hooks.iter().any(|h| h.name == "cli")
    {
        w.hooks.push(Hook {
            name: "cli".into(),
            state: "ERROR".into(),
            command: command.clone(),
            arguments: args.hook_arguments.clone(),
            arguments_stdin: true,
        });
    }
    WorldHandle::new(w, args.state.clone()).map(Some)
}
