//! One unplanned failover, watched from every side as it happens: the survivor's agent
//! (peer lost, fence journaled), the client (the floating IP answers, OpenNebula serves),
//! systemd on the survivor (the unit's activation time) and the stuck-VM report file. Used by
//! `make demo` (narrated live) and `make bench-failover` (measured).

use std::time::{Duration, Instant, SystemTime};

use crate::harness::{Answer, Node, Probe};

use super::{admin, oned};

/// A moment taken on every clock the sources use.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// The test's clock.
    pub at: Instant,
    /// Wall clock (fence journal, report file time).
    pub wall: SystemTime,
    /// CLOCK_MONOTONIC in µs (systemd's `*TimestampMonotonic`; nodes share the machine's
    /// clock: they have no time namespace).
    pub mono_us: u64,
}

impl Mark {
    /// Now.
    pub fn now() -> Mark {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Mark {
            at: Instant::now(),
            wall: SystemTime::now(),
            mono_us: ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000,
        }
    }

    fn since_wall(&self, t: SystemTime) -> Option<Duration> {
        t.duration_since(self.wall).ok()
    }
}

/// The steps of a failover, in the order of the story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// The survivor's agent reports the old owner offline.
    PeerLost,
    /// The fence journal holds a successful fence of the old owner.
    Fenced,
    /// The floating IP answers the client from the survivor (reset or connection).
    VipAnswers,
    /// systemd on the survivor entered `active` for `opennebula.service`.
    UnitActive,
    /// The client is served by the survivor's OpenNebula through the floating IP.
    Served,
    /// The survivor wrote the stuck-VM report.
    Report,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 6] = [
        Step::PeerLost,
        Step::Fenced,
        Step::VipAnswers,
        Step::UnitActive,
        Step::Served,
        Step::Report,
    ];

    /// Words for tables and narration.
    pub fn label(self) -> &'static str {
        match self {
            Step::PeerLost => "peer lost detected",
            Step::Fenced => "fence done",
            Step::VipAnswers => "floating IP answers",
            Step::UnitActive => "opennebula active",
            Step::Served => "client served",
            Step::Report => "stuck-VM report",
        }
    }
}

/// A step seen: when (after the mark) and what was seen.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which step.
    pub step: Step,
    /// Time since the mark, from the most exact source available.
    pub after: Duration,
    /// What was seen, in words.
    pub detail: String,
}

/// What to watch.
pub struct Watch<'a> {
    /// The client's probe of VIP:2633 (started before the mark).
    pub probe: &'a Probe,
    /// The node that was powered off.
    pub old: &'a Node,
    /// The node expected to take over.
    pub new: &'a Node,
    /// Steps to wait for.
    pub steps: Vec<Step>,
    /// The moment of the power-off.
    pub mark: Mark,
}

impl Watch<'_> {
    /// Polls every 10 ms until every step is seen, `timeout` passes or `stop()` is true;
    /// calls `on_seen` as each step is first seen. Returns the steps seen, in the order seen.
    pub fn run(
        &self,
        timeout: Duration,
        stop: &dyn Fn() -> bool,
        mut on_seen: impl FnMut(&Seen),
    ) -> Vec<Seen> {
        let mut seen: Vec<Seen> = Vec::new();
        let end = self.mark.at + timeout;
        while Instant::now() < end && !stop() {
            for &step in &self.steps {
                if seen.iter().any(|s| s.step == step) {
                    continue;
                }
                if let Some(s) = self.check(step) {
                    on_seen(&s);
                    seen.push(s);
                }
            }
            if seen.len() == self.steps.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    }

    fn check(&self, step: Step) -> Option<Seen> {
        let (after, detail) = match step {
            Step::PeerLost => self.peer_lost()?,
            Step::Fenced => self.fenced()?,
            Step::VipAnswers => {
                let new = self.new.name();
                let (at, a) = self.probe.first_after(self.mark.at, |a| match a {
                    Answer::Refused => true,
                    Answer::Served(n) => n == new,
                })?;
                let what = match a {
                    Answer::Refused => "connection refused: the address is up, oned not yet",
                    Answer::Served(_) => "answered by OpenNebula at once",
                };
                let mac = self.new.mac();
                (at - self.mark.at, format!("{what} (holder {new}, {mac})"))
            }
            Step::Served => {
                let new = self.new.name();
                let (at, _) = self
                    .probe
                    .first_after(self.mark.at, |a| matches!(a, Answer::Served(n) if n == new))?;
                (at - self.mark.at, format!("VIP:2633 answered `{new}`"))
            }
            Step::UnitActive => self.unit_active()?,
            Step::Report => self.report()?,
        };
        Some(Seen {
            step,
            after,
            detail,
        })
    }

    fn peer_lost(&self) -> Option<(Duration, String)> {
        let s = admin::status(self.new)?;
        let m = s.members.iter().find(|m| m.name == self.old.name())?;
        if m.up {
            return None;
        }
        let heard = m
            .last_contact_ms
            .map_or("never".to_string(), |ms| format!("{ms} ms ago"));
        Some((
            self.mark.at.elapsed(),
            format!(
                "{} sees {} offline (last heard {heard}); quorum: {}",
                self.new.name(),
                self.old.name(),
                s.quorum
            ),
        ))
    }

    fn fenced(&self) -> Option<(Duration, String)> {
        let s = admin::status(self.new)?;
        let rec = s.fencing.journal.iter().rev().find(|r| {
            r.target == self.old.name()
                && r.success
                && SystemTime::UNIX_EPOCH + Duration::from_millis(r.at_ms) >= self.mark.wall
        })?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(rec.at_ms);
        Some((
            self.mark.since_wall(at)?,
            format!(
                "{} fenced by {} via {} ({}), journaled in Raft",
                rec.target, rec.by, rec.method, rec.action
            ),
        ))
    }

    fn unit_active(&self) -> Option<(Duration, String)> {
        if !self.new.unit_has_processes("opennebula.service") {
            return None;
        }
        let out = self.new.systemctl(&[
            "show",
            "-p",
            "ActiveState",
            "-p",
            "ActiveEnterTimestampMonotonic",
            "opennebula.service",
        ]);
        let field = |k: &str| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        if field("ActiveState")?.trim() != "active" {
            return None;
        }
        let us: u64 = field("ActiveEnterTimestampMonotonic")?
            .trim()
            .parse()
            .ok()?;
        let after = Duration::from_micros(us.checked_sub(self.mark.mono_us)?);
        Some((
            after,
            format!("opennebula.service active on {} (systemd)", self.new.name()),
        ))
    }

    fn report(&self) -> Option<(Duration, String)> {
        let file = oned::report_file(self.new);
        let mtime = std::fs::metadata(&file).ok()?.modified().ok()?;
        let after = self.mark.since_wall(mtime)?;
        let r = oned::last_report(self.new)?;
        Some((after, r.summary()))
    }
}

/// The failover itself: clears the survivor's last stuck-VM report, powers `old` off and
/// watches `steps` until all are seen, `timeout` passes or `stop()` is true. Returns the
/// moment of the power-off and the steps seen (see [`Watch::run`]).
pub fn power_off_and_watch(
    probe: &Probe,
    old: &Node,
    new: &Node,
    steps: Vec<Step>,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
    on_seen: impl FnMut(&Seen),
) -> (Mark, Vec<Seen>) {
    let _ = std::fs::remove_file(oned::report_file(new));
    let mark = Mark::now();
    old.power_off();
    let watch = Watch {
        probe,
        old,
        new,
        steps,
        mark,
    };
    let seen = watch.run(timeout, stop, on_seen);
    (mark, seen)
}
