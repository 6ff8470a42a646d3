//! The fault schedule: drawn in full from the seed before the campaign starts, so a seed
//! names the same sequence of faults, targets and durations whatever the cluster does.

use std::time::Duration;

/// A small, fixed pseudo-random generator (SplitMix64): the same seed gives the same
/// schedule on every machine and with every version of the dependencies.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform duration in `[lo, hi]` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Who a fault hits, resolved when it is injected (the owner is whoever serves then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The front-end that runs the group.
    Owner,
    /// The other front-end.
    Passive,
    /// The witness (witness topology only).
    Witness,
}

/// One of the two networks between the front-ends (two-network topology).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Link 1, through the switch: only the frames between the two front-ends are hit
    /// (clients still reach both).
    Lan,
    /// Link 2, the back-to-back cable.
    Crossover,
}

/// One fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Power off, then boot after the hold.
    PowerCycle(Target),
    /// `kill -9` of the agent; systemd does not restart it: started again after the hold.
    AgentKill(Target),
    /// SIGSTOP of the agent, SIGCONT after the hold (short: below the loss timeout).
    AgentHang(Target),
    /// The two no longer hear each other; others hear both.
    Partition(Target, Target),
    /// Frames from the first no longer reach the second.
    OneWay(Target, Target),
    /// Random loss of this percentage of the frames arriving at the target.
    Loss(Target, u8),
    /// The cable goes down and up: (down, up) times.
    LinkFlap(Target, Vec<(Duration, Duration)>),
    /// The fence daemon stops; with `true`, the owner is also powered off meanwhile.
    FenceDown(bool),
    /// The witness is powered off, then booted.
    WitnessDown,
    /// `systemctl restart` of the agent (graceful: an owner hands the group over).
    AgentRestart(Target),
    /// Two networks: one link between the front-ends fails (the crossover is pulled at the
    /// target's end; the LAN drops the frames between the front-ends), the other holds.
    OneLinkDown(Link, Target),
    /// Two networks: one link goes down and up, (down, up) times.
    OneLinkFlap(Link, Target, Vec<(Duration, Duration)>),
    /// Two networks: this percentage of the frames arriving at the target on one link is
    /// lost (on the LAN, only those from the other front-end).
    OneLinkLossy(Link, Target, u8),
}

impl Fault {
    /// The fault's type, for the per-type tables.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::PowerCycle(_) => "power-off + boot",
            Fault::AgentKill(_) => "agent kill -9",
            Fault::AgentHang(_) => "agent SIGSTOP/SIGCONT",
            Fault::Partition(..) => "partition (both ways)",
            Fault::OneWay(..) => "partition (one way)",
            Fault::Loss(..) => "packet loss",
            Fault::LinkFlap(..) => "link flaps",
            Fault::FenceDown(false) => "fence device down",
            Fault::FenceDown(true) => "fence device down + owner power-off",
            Fault::WitnessDown => "witness down",
            Fault::AgentRestart(_) => "agent restart",
            Fault::OneLinkDown(..) => "one link down",
            Fault::OneLinkFlap(..) => "one link flap",
            Fault::OneLinkLossy(..) => "one link lossy",
        }
    }
}

/// A fault, how long it lasts before it heals, and the pause after recovery.
#[derive(Clone, Debug)]
pub struct Planned {
    /// What.
    pub fault: Fault,
    /// How long before healing.
    pub hold: Duration,
    /// Quiet time after recovery, before the next fault.
    pub pause: Duration,
}

/// Draws `n` faults for a topology with (`witness`) or without a witness, on one network.
pub fn draw(seed: u64, n: usize, witness: bool) -> Vec<Planned> {
    draw_links(seed, n, witness, 1)
}

/// Draws `n` faults; with two `links` (two-node on two networks) the one-link faults are
/// drawn too (one network: exactly [`draw`]'s schedule for the seed).
pub fn draw_links(seed: u64, n: usize, witness: bool, links: u8) -> Vec<Planned> {
    let kinds = if links >= 2 { 13 } else { 10 };
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let frontends = [Target::Owner, Target::Passive];
    while out.len() < n {
        let any = |rng: &mut Rng| {
            if witness && rng.chance(20) {
                Target::Witness
            } else if rng.chance(60) {
                Target::Owner
            } else {
                Target::Passive
            }
        };
        let pair = |rng: &mut Rng| {
            let pairs: &[(Target, Target)] = if witness {
                &[
                    (Target::Owner, Target::Passive),
                    (Target::Passive, Target::Owner),
                    (Target::Owner, Target::Witness),
                    (Target::Witness, Target::Owner),
                    (Target::Passive, Target::Witness),
                    (Target::Witness, Target::Passive),
                ]
            } else {
                &[
                    (Target::Owner, Target::Passive),
                    (Target::Passive, Target::Owner),
                ]
            };
            pairs[rng.below(pairs.len() as u64) as usize]
        };
        let mut hold = rng.ms(500, 4000);
        let fault = match rng.below(kinds) {
            0 => Fault::PowerCycle(frontends[rng.below(2) as usize]),
            1 => Fault::AgentKill(any(&mut rng)),
            2 => {
                let t = any(&mut rng);
                hold = if rng.chance(50) {
                    rng.ms(200, 700)
                } else {
                    rng.ms(1500, 4000)
                };
                Fault::AgentHang(t)
            }
            3 => {
                let (a, b) = pair(&mut rng);
                Fault::Partition(a, b)
            }
            4 => {
                let (a, b) = pair(&mut rng);
                Fault::OneWay(a, b)
            }
            5 => Fault::Loss(any(&mut rng), 10 + rng.below(41) as u8),
            6 => {
                let t = any(&mut rng);
                let flaps = (0..1 + rng.below(4))
                    .map(|_| (rng.ms(100, 1500), rng.ms(100, 600)))
                    .collect();
                hold = Duration::ZERO;
                Fault::LinkFlap(t, flaps)
            }
            7 => Fault::FenceDown(rng.chance(50)),
            8 if witness => Fault::WitnessDown,
            8 => continue,
            10 => Fault::OneLinkDown(link(&mut rng), frontends[rng.below(2) as usize]),
            11 => {
                let (l, t) = (link(&mut rng), frontends[rng.below(2) as usize]);
                let flaps = (0..2 + rng.below(6))
                    .map(|_| (rng.ms(100, 2000), rng.ms(100, 1000)))
                    .collect();
                hold = Duration::ZERO;
                Fault::OneLinkFlap(l, t, flaps)
            }
            12 => Fault::OneLinkLossy(
                link(&mut rng),
                frontends[rng.below(2) as usize],
                10 + rng.below(81) as u8,
            ),
            _ => {
                hold = Duration::ZERO;
                Fault::AgentRestart(any(&mut rng))
            }
        };
        let pause = rng.ms(200, 1500);
        out.push(Planned { fault, hold, pause });
    }
    out
}

fn link(rng: &mut Rng) -> Link {
    if rng.chance(50) {
        Link::Lan
    } else {
        Link::Crossover
    }
}
