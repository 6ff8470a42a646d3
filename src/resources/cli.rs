//! `oneha resource start|stop|monitor [NAME|--all]`: drives resources on this node directly,
//! bypassing the cluster (like `crm_resource --force-start`), for debugging and recovery.

use clap::{Args, ValueEnum};

use super::{Group, ResourceState};
use crate::config;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Start (all: in group order; a failure stops what was started).
    Start,
    /// Stop (all: in reverse order).
    Stop,
    /// Check and print the state; exit 0 running, 3 stopped, 1 failed.
    Monitor,
}

/// Arguments of `oneha resource`.
#[derive(Debug, Clone, Args)]
pub struct ResourceArgs {
    /// start, stop or monitor.
    #[arg(value_enum)]
    pub action: Action,
    /// Resource name from the config's `resources.group`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// The whole group instead of one resource.
    #[arg(long)]
    pub all: bool,
}

/// Exit code: done / running.
pub const EXIT_OK: i32 = 0;
/// Exit code: an operation failed, or a resource failed its monitor.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad arguments or config.
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `monitor`: stopped (as LSB `status`).
pub const EXIT_STOPPED: i32 = 3;

/// Runs the command; returns the exit code.
pub async fn run(args: ResourceArgs, config: Option<&std::path::Path>) -> i32 {
    let path = config::resolve_path(config);
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_USAGE;
        }
    };
    let group = match Group::from_config(&cfg.resources) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return EXIT_USAGE;
        }
    };
    if args.action != Action::Monitor {
        eprintln!(
            "warning: acting on resources directly, bypassing the cluster; a running agent \
             may see this as a failure and recover it"
        );
    }
    let one = match &args.name {
        Some(name) if !args.all => match group.get(name) {
            Some(r) => Some(r),
            None => {
                let names: Vec<&str> = group.resources().iter().map(|r| r.name()).collect();
                eprintln!(
                    "no resource named `{name}` in {}; the group has: {}",
                    path.display(),
                    names.join(", ")
                );
                return EXIT_USAGE;
            }
        },
        _ => None,
    };
    let code = match (args.action, one) {
        (Action::Start, Some(r)) => report(r.start().await, &format!("{}: started", r.name())),
        (Action::Stop, Some(r)) => report(r.stop().await, &format!("{}: stopped", r.name())),
        (Action::Monitor, Some(r)) => {
            let state = r.monitor().await;
            print_state(r.name(), &state);
            state.map_or(EXIT_FAILED, |s| state_code(&s))
        }
        (Action::Start, None) => report(group.start().await, "group: started"),
        (Action::Stop, None) => report(group.stop().await, "group: stopped"),
        (Action::Monitor, None) => {
            let probes = group.probe().await;
            let mut codes = Vec::new();
            for p in &probes {
                print_state(&p.name, &p.state);
                codes.push(p.state.as_ref().map_or(EXIT_FAILED, state_code));
            }
            combine(&codes)
        }
    };
    // Before exiting: the second gratuitous ARP burst, the daemon-reload after a stop.
    let settled = match one {
        Some(r) => r.settle().await,
        None => group.settle().await,
    };
    match settled {
        Ok(()) => code,
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILED
        }
    }
}

/// Prints `ok_text` for success or the error; returns the exit code.
fn report<E: std::fmt::Display>(result: Result<(), E>, ok_text: &str) -> i32 {
    match result {
        Ok(()) => {
            println!("{ok_text}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILED
        }
    }
}

fn print_state<E: std::fmt::Display>(name: &str, state: &Result<ResourceState, E>) {
    match state {
        Ok(s) => println!("{name}: {s}"),
        Err(e) => println!("{name}: monitor error: {e}"),
    }
}

fn state_code(s: &ResourceState) -> i32 {
    match s {
        ResourceState::Running => EXIT_OK,
        ResourceState::Stopped => EXIT_STOPPED,
        ResourceState::Failed(_) | ResourceState::LinkDown(_) => EXIT_FAILED,
    }
}

/// All running: 0; all stopped: 3; anything else (mixed, failed): 1.
fn combine(codes: &[i32]) -> i32 {
    if codes.iter().all(|c| *c == EXIT_OK) {
        EXIT_OK
    } else if codes.iter().all(|c| *c == EXIT_STOPPED) {
        EXIT_STOPPED
    } else {
        EXIT_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_monitor_code() {
        assert_eq!(combine(&[EXIT_OK, EXIT_OK]), EXIT_OK);
        assert_eq!(combine(&[EXIT_STOPPED, EXIT_STOPPED]), EXIT_STOPPED);
        assert_eq!(combine(&[EXIT_OK, EXIT_STOPPED]), EXIT_FAILED);
        assert_eq!(combine(&[EXIT_OK, EXIT_FAILED]), EXIT_FAILED);
    }
}
