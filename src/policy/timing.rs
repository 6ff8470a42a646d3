//! Timing rules: how long to wait before trying a failed fence or stop again, how long a
//! node just fenced is left alone, the two-node peer's fence delay, and how long a failed
//! start's report may be awaited. Pure functions of facts and durations; the control loop
//! keeps the instants and asks these.

use std::time::Duration;

/// A node confirmed off is not fenced again for this long: its fence record may not be in
/// the journal yet, and fencing it twice would only power-cycle a node that is booting.
pub const FENCE_HOLD_OFF: Duration = Duration::from_secs(10);

/// A start failure not yet applied blocks a new start for at most this long: a report that
/// never commits must not keep the group down.
pub const START_FAILURE_PATIENCE: Duration = Duration::from_secs(10);

/// Retries of a failed operation (fence, stop) wait 1 s, doubling up to 32 s.
pub fn retry_backoff(failures_before: u32) -> Duration {
    Duration::from_secs(1 << failures_before.min(5))
}

/// How long before a failed fence of `target` is tried again. Two-node: the passive side
/// (not running the group) keeps its handicap on every retry, so that when the fence
/// device comes back during a split the active side still wins.
pub fn fence_retry_after(
    failures_before: u32,
    two_node: bool,
    running_here: bool,
    passive_delay: Duration,
) -> Duration {
    let base = retry_backoff(failures_before);
    if two_node && !running_here {
        base + passive_delay
    } else {
        base
    }
}

/// May a node be fenced now? Not while a failed fence of it waits for its retry
/// (`retry_in`: time left), nor within [`FENCE_HOLD_OFF`] after it was confirmed off,
/// unless it has been heard from since (`heard_since_fence`): then it came back, and a new
/// loss is a new fault, not the old one seen late. (Holding it off anyway let a peer that
/// had just rebooted win the next split: it fenced after its delay while the active side,
/// held off, could not.)
pub fn fence_allowed(
    retry_in: Option<Duration>,
    fenced_ago: Option<Duration>,
    heard_since_fence: bool,
) -> bool {
    let waiting = retry_in.is_some_and(|d| !d.is_zero());
    let held_off = fenced_ago.is_some_and(|d| d < FENCE_HOLD_OFF) && !heard_since_fence;
    !waiting && !held_off
}

/// What the peer's fence device said about its power during this loss: not asked,
/// asked without an answer, or an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerHint {
    /// Not asked during this loss.
    NotAsked,
    /// Asked; no answer (yet, or the device could not say).
    Unknown,
    /// The device answered: powered on (`true`) or off (`false`).
    Powered(bool),
}

/// Two-node: how long the passive side waits before fencing its lost peer: its handicap
/// (`passive_delay`) plus the device's own delay, or nothing when the peer's fence device
/// already reports it powered off (there is no race left to lose).
pub fn peer_fence_delay(
    hint: PowerHint,
    passive_delay: Duration,
    device_delay: Duration,
) -> Duration {
    if hint == PowerHint::Powered(false) {
        Duration::ZERO
    } else {
        passive_delay + device_delay
    }
}

/// A start of `current` generation failed here `ago`, and its report is `recorded` or not:
/// is the report still awaited (so a new start must wait)?
pub fn start_failure_pending(
    failed: Option<(u64, Duration)>,
    current: u64,
    recorded: bool,
) -> bool {
    matches!(failed, Some((generation, ago))
        if generation == current && !recorded && ago < START_FAILURE_PATIENCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn retries_double_up_to_32_seconds() {
        let got: Vec<u64> = (0..8).map(|n| retry_backoff(n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 32, 32]);
    }

    #[test]
    fn fence_retry_table() {
        // (failures before, two-node, running here, expected)
        let rows = [
            (0, false, false, S(1)),
            (3, false, false, S(8)),
            (0, true, true, S(1)),
            (0, true, false, S(3)),
            (9, true, false, S(34)),
        ];
        for (n, two, running, want) in rows {
            assert_eq!(
                fence_retry_after(n, two, running, S(2)),
                want,
                "failures {n}, two-node {two}, running {running}"
            );
        }
    }

    #[test]
    fn fence_allowed_table() {
        // (retry in, fenced ago, heard since the fence, allowed)
        let rows = [
            (None, None, false, true),
            (Some(S(3)), None, false, false),
            (Some(Duration::ZERO), None, false, true),
            (None, Some(S(2)), false, false),
            (None, Some(S(10)), false, true),
            (Some(Duration::ZERO), Some(S(11)), false, true),
            // Fenced 4 s ago, rebooted and heard since, lost again: a new fault.
            (None, Some(S(4)), true, true),
            // But a failed retry still waits.
            (Some(S(2)), Some(S(4)), true, false),
        ];
        for (retry, ago, heard, want) in rows {
            assert_eq!(
                fence_allowed(retry, ago, heard),
                want,
                "retry {retry:?}, ago {ago:?}, heard since {heard}"
            );
        }
    }

    #[test]
    fn peer_fence_delay_table() {
        let rows = [
            (PowerHint::NotAsked, S(7)),
            (PowerHint::Unknown, S(7)),
            (PowerHint::Powered(true), S(7)),
            (PowerHint::Powered(false), S(0)),
        ];
        for (hint, want) in rows {
            assert_eq!(peer_fence_delay(hint, S(2), S(5)), want, "{hint:?}");
        }
    }

    #[test]
    fn start_failure_pending_table() {
        let rows = [
            (None, 4, false, false),
            (Some((4, S(1))), 4, false, true),
            (Some((4, S(1))), 4, true, false),
            (Some((3, S(1))), 4, false, false),
            (Some((4, S(10))), 4, false, false),
        ];
        for (failed, current, recorded, want) in rows {
            assert_eq!(
                start_failure_pending(failed, current, recorded),
                want,
                "{failed:?} current {current} recorded {recorded}"
            );
        }
    }
}
