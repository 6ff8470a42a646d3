//! Leaving: what an agent told to stop does with the group, and how long the others wait
//! for an agent that said it restarts in place.
//!
//! `systemctl stop oneha` (maintenance, shutdown) hands the group over: relocate, stop,
//! journal the release, so that nobody fences this node. `systemctl restart oneha` (an
//! upgrade, a config change) keeps the group running where it is: the floating IP stays on
//! its interface and the units are systemd's, not the agent's; the agent tells its peers
//! (gossip `restarting`) and exits, and the restarted agent adopts the group (probe, then
//! an idempotent start). Moving the group would cost clients a stop and a start; staying
//! costs them nothing.

use std::time::Duration;

use super::Held;

/// How long the others wait for a member that announced a restart in place before they
/// treat its silence as a loss (fence it, take the group over). Long enough for a restart
/// of the agent on a loaded machine; it delays the failover of a node that dies during its
/// agent's restart by at most this much.
pub const RESTART_GRACE: Duration = Duration::from_secs(10);

/// What the agent does with the group on exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitPlan {
    /// Relocate the group if it is ours, stop it here and journal the release (nothing to
    /// do when nothing runs here).
    HandOver,
    /// Leave the group running here, tell the peers, exit; the restarted agent adopts it.
    KeepRunning,
    /// Nothing runs here and the agent restarts: tell the peers, so that they wait
    /// [`RESTART_GRACE`] for it instead of taking its silence for a loss (a two-node active
    /// side fences a silent peer at once: every restart of the passive's agent would
    /// power-cycle the passive node).
    AnnounceRestart,
}

/// The exit plan. `restart`: systemd restarts the agent's unit (not a stop, not a
/// shutdown). Only a group that runs here, settled (no operation in flight, no failed stop)
/// and owned by this node in the replicated state stays; a node where nothing of the group
/// runs (probed, nothing in flight) announces its restart; anything else is handed over, as
/// a restarted agent could not adopt it (a failed stop is left to S8: the peers fence).
pub fn exit_plan(restart: bool, held: &Held, busy: bool, owner_is_me: bool) -> ExitPlan {
    if !restart || busy {
        return ExitPlan::HandOver;
    }
    match held {
        Held::Running(_) if owner_is_me => ExitPlan::KeepRunning,
        Held::Stopped => ExitPlan::AnnounceRestart,
        _ => ExitPlan::HandOver,
    }
}

/// Is a member that is out of touch for `lost_for` (`None`: in touch) still within its
/// restart grace? Only if its last gossip announced a restart in place.
pub fn in_restart_grace(announced_restart: bool, lost_for: Option<Duration>) -> bool {
    announced_restart && lost_for.is_some_and(|d| d < RESTART_GRACE)
}
