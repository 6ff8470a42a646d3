//! The `timers:` section: Raft's tick, heartbeat, election and loss timers, by profile.

use serde::{Deserialize, Serialize};

use super::Dur;

/// Raft timers: a tick length and heartbeat/election counts in ticks.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimersConfig {
    /// `default` (tick 100ms, heartbeat 2, election 5, lost 10) or `fast` (tick 25ms,
    /// heartbeat 1, election 6, lost 6). Explicit values below override the profile's.
    #[serde(default)]
    pub profile: Profile,
    /// Length of one Raft tick.
    pub tick: Option<Dur>,
    /// Leader heartbeat interval, in ticks.
    pub heartbeat_ticks: Option<usize>,
    /// Minimum election timeout, in ticks (raft randomises it within [n, 2n)).
    pub election_ticks: Option<usize>,
    /// A member not heard from for this many ticks is lost: the leader moves the group
    /// away from a lost owner, and in two-node mode the peer is fenced.
    pub lost_ticks: Option<usize>,
}

/// A named set of timer defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Conservative: tolerates scheduling hiccups on loaded machines.
    #[default]
    Default,
    /// Fast failover on a quiet, low-latency network.
    Fast,
}

/// The timer values in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Length of one Raft tick.
    pub tick: std::time::Duration,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Minimum election timeout in ticks.
    pub election_ticks: usize,
    /// Silence, in ticks, after which a member is lost.
    pub lost_ticks: usize,
}

impl Timers {
    /// Silence after which a member is lost.
    pub fn lost_after(&self) -> std::time::Duration {
        self.tick * self.lost_ticks as u32
    }
    /// S4: how long an owner may go without hearing a quorum before it stops the group.
    /// Shorter than both the election timeout and the time after which the others declare
    /// it lost (two thirds of it), so it stops before anyone may take over.
    pub fn lease(&self) -> std::time::Duration {
        self.election().min(self.lost_after() * 2 / 3)
    }
    /// The minimum election timeout.
    pub fn election(&self) -> std::time::Duration {
        self.tick * self.election_ticks as u32
    }
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> std::time::Duration {
        self.tick * self.heartbeat_ticks as u32
    }
    /// How often a link that carries nothing else gets a keep-alive frame: four chances
    /// within the loss timeout, never more often than the heartbeat. (A third was tried:
    /// two frames a second fewer per idle link, but a restart in place announces itself for
    /// two keep-alives, and the longer announcement let peers hung meanwhile lose the
    /// restarted owner: `e2e_findings::a_restarted_owner_that_hears_no_peer_at_first_...`.)
    pub fn keepalive(&self) -> std::time::Duration {
        self.heartbeat().max(self.lost_after() / 4)
    }
}

impl TimersConfig {
    /// The profile's values with explicit overrides applied.
    pub fn effective(&self) -> Timers {
        let (tick, hb, el, lost) = match self.profile {
            Profile::Default => (100, 2, 5, 10),
            Profile::Fast => (25, 1, 6, 6),
        };
        Timers {
            tick: self
                .tick
                .map(Dur::get)
                .unwrap_or(std::time::Duration::from_millis(tick)),
            heartbeat_ticks: self.heartbeat_ticks.unwrap_or(hb),
            election_ticks: self.election_ticks.unwrap_or(el),
            lost_ticks: self.lost_ticks.unwrap_or(lost),
        }
    }

    pub(super) fn fill_defaults(&mut self) {
        let t = self.effective();
        self.tick = Some(Dur(t.tick));
        self.heartbeat_ticks = Some(t.heartbeat_ticks);
        self.election_ticks = Some(t.election_ticks);
        self.lost_ticks = Some(t.lost_ticks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keepalive_gives_four_chances_within_the_loss_timeout() {
        let ms = Duration::from_millis;
        // (profile, explicit heartbeat ticks, keep-alive)
        let rows = [
            (Profile::Default, None, ms(250)),
            (Profile::Fast, None, Duration::from_micros(37_500)),
            // Never more often than the heartbeat.
            (Profile::Default, Some(5), ms(500)),
        ];
        for (profile, hb, want) in rows {
            let t = TimersConfig {
                profile,
                heartbeat_ticks: hb,
                ..TimersConfig::default()
            }
            .effective();
            assert_eq!(t.keepalive(), want, "{profile:?}, heartbeat ticks {hb:?}");
            assert!(t.keepalive() * 4 <= t.lost_after() || hb.is_some());
        }
    }
}
