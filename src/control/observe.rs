//! Observations: what this node sees now (liveness, its own hold, timers), for the policy.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Loop;
use crate::cluster::state::{NodeId, ReplicatedState};
use crate::policy::client_link::{PeerLinkFacts, link_peers};
use crate::policy::exit::in_restart_grace;
use crate::policy::liveness::{Liveness, lost_for, lost_for_since_links_back};
use crate::policy::timing::{
    FENCE_HOLD_OFF, PowerHint, fence_allowed, peer_fence_delay, start_failure_pending,
};
use crate::policy::{Held, Observations};

impl Loop {
    pub(super) fn observations(&mut self, st: &ReplicatedState, leader: bool) -> Observations {
        let ctx = &self.ctx;
        let timers = ctx.cfg.timers();
        let lost_after = timers.lost_after();
        let members = ctx.node.members();
        let liveness = Liveness::derive(
            ctx.me,
            &members,
            lost_after,
            timers.lease(),
            self.started_at.elapsed(),
        );
        self.direct_live = liveness.direct.iter().copied().collect();
        // Members heard since this agent started and silent now: what this node would act
        // on (gossiped, so that a peer that still hears this node learns it is lost here).
        self.lost_now = members
            .iter()
            .filter(|m| m.last_contact_ms.is_some() && !liveness.direct.contains(&m.id))
            .map(|m| m.id)
            .collect();
        // Members silent now whose last word was a restart of their agent in place.
        let restarting = members
            .iter()
            .filter(|m| {
                in_restart_grace(
                    m.gossip.as_ref().is_some_and(|g| g.restarting),
                    lost_for(m.last_contact_ms, lost_after),
                )
            })
            .map(|m| m.id)
            .collect();
        let now = Instant::now();
        // How long each blocker of the current generation has had to release.
        let g = &st.group;
        let mut waiting = Vec::new();
        if g.owner == Some(ctx.me) {
            for b in g.blockers(ctx.me) {
                let since = *self.waiting_since.entry((g.generation, b)).or_insert(now);
                waiting.push((b, now.duration_since(since)));
            }
        }
        self.waiting_since
            .retain(|(gen_, _), _| *gen_ == g.generation);
        // Nodes whose fence failed wait for their retry; nodes just fenced are left alone.
        self.recently_fenced
            .retain(|_, at| now.duration_since(*at) < FENCE_HOLD_OFF);
        let fence_backoff = self
            .fence_retry
            .iter()
            .map(|(n, (at, _, _))| (*n, Some(at.saturating_duration_since(now))))
            .chain(self.recently_fenced.keys().map(|n| (*n, None)))
            .filter(|(n, retry_in)| {
                let ago = self
                    .recently_fenced
                    .get(n)
                    .map(|at| now.duration_since(*at));
                let heard_since = ago.is_some_and(|ago| {
                    members.iter().any(|m| {
                        m.id == *n
                            && m.last_contact_ms
                                .is_some_and(|ms| u128::from(ms) < ago.as_millis())
                    })
                });
                !fence_allowed(*retry_in, ago, heard_since)
            })
            .map(|(n, _)| n)
            .collect();
        let window = self.pcfg.restart_window;
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.restarts.pop_front();
        }
        let peer = self.pcfg.members.iter().copied().find(|&m| m != ctx.me);
        let carrier = ctx.carrier.borrow().clone();
        let links_back_ms = carrier
            .back_at
            .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX));
        let peer_lost_for = peer.and_then(|p| {
            let last = members.iter().find(|m| m.id == p)?.last_contact_ms;
            lost_for_since_links_back(last, links_back_ms, lost_after)
        });
        // The peer is heard now and its gossip says it has lost this node: a one-way split,
        // once it has said so for a while.
        let peer_lost_me = peer.is_some_and(|p| {
            liveness.direct.contains(&p)
                && members
                    .iter()
                    .find(|m| m.id == p)
                    .and_then(|m| m.gossip.as_ref())
                    .is_some_and(|g| g.lost.contains(&ctx.me))
        });
        self.lost_me_since = match (peer_lost_me, self.lost_me_since) {
            (false, _) => None,
            (true, since) => Some(since.unwrap_or(now)),
        };
        // Two-node: while the peer is lost, ask its fence device once whether it is already
        // off; if so, the passive side need not wait its handicap.
        match (peer_lost_for, peer) {
            (Some(_), Some(p))
                if ctx.cfg.two_node
                    && ctx.cfg.fencing.check_peer_power
                    && (ctx.node.seen_all() || self.forced_wfa) =>
            {
                if self.peer_hint == PowerHint::NotAsked
                    && let Some(f) = self.ex.fencer_arc()
                {
                    self.peer_hint = PowerHint::Unknown;
                    let (name, tx) = (ctx.node_name(p), self.hints.clone());
                    tokio::spawn(async move {
                        let _ = tx.send((p, f.power_hint(&name).await));
                    });
                }
            }
            _ => self.peer_hint = PowerHint::NotAsked,
        }
        let device_delay = match (self.ex.fencer(), peer) {
            (Some(f), Some(p)) => f.delay(&ctx.node_name(p)),
            _ => Duration::ZERO,
        };
        let peer_fence_delay = peer_fence_delay(
            self.peer_hint,
            ctx.cfg.fencing.passive_delay.get(),
            device_delay,
        );
        // Steady (everyone heard, nothing in flight, nothing waited for): sleep until the
        // first moment a member could turn lost or out of lease; otherwise every tick.
        let steady = self.synced
            && !self.busy
            && self.fencing.is_none()
            && waiting.is_empty()
            && peer_lost_for.is_none()
            && self.monitor_failed.is_empty()
            && self.notices.is_empty()
            && self.in_flight.is_empty()
            && self.fence_retry.is_empty()
            // An owner whose client link is down decides on a clock (`link_move_after`);
            // anyone else has nothing to do about it.
            && (carrier.clients_down.is_empty() || !matches!(self.held, Held::Running(_)))
            && self.direct_live.len() == members.len() + 1;
        self.next_wake = if steady {
            let (lost_after, lease) = (
                lost_after.as_millis() as u64,
                timers.lease().as_millis() as u64,
            );
            let mut next = lost_after;
            for ms in members.iter().filter_map(|m| m.last_contact_ms) {
                for limit in [lost_after, lease] {
                    if ms <= limit {
                        next = next.min(limit - ms + 1);
                    }
                }
            }
            Duration::from_millis(next)
        } else {
            Duration::ZERO
        };
        // The clients' side: this node's floating IPs' interfaces, and what the peers say of
        // theirs (`policy::client_link`).
        let client_link_down_for = carrier.client_down_for(now);
        let peer_links: Vec<PeerLinkFacts> = members
            .iter()
            .filter(|m| m.id != ctx.me)
            .map(|m| PeerLinkFacts {
                id: m.id,
                last_contact_ms: m.last_contact_ms,
                has_gossip: m.gossip.is_some(),
                no_carrier: m.gossip.as_ref().is_some_and(|g| !g.no_carrier.is_empty()),
            })
            .collect();
        let mut client_links_down: BTreeSet<NodeId> = peer_links
            .iter()
            .filter(|p| p.no_carrier)
            .map(|p| p.id)
            .collect();
        let link_peers = match client_link_down_for {
            Some(down) => {
                client_links_down.insert(ctx.me);
                link_peers(down, &peer_links)
            }
            None => BTreeSet::new(),
        };
        // An operator's restart requests before this agent started are not ours to serve.
        let served = *self.restarts_served.get_or_insert(g.restart_requests);
        Observations {
            leader,
            live: liveness.live,
            within_lease: liveness.within_lease,
            seen_all: ctx.node.seen_all() || self.forced_wfa,
            held: self.held.clone(),
            busy: self.busy,
            fencing: self.fencing.is_some(),
            monitor_failed: self.monitor_failed.clone(),
            link_down_for: self.link_down_for(now),
            recent_restarts: self.restarts.len() as u32,
            restarts_served: served,
            waiting,
            fence_backoff,
            peer_lost_for,
            peer_lost_me_for: self.lost_me_since.map(|t| now.duration_since(t)),
            peer_fence_delay,
            own_links_down: carrier.all_down(),
            synced: self.synced,
            start_failure_pending: self.start_failure_pending(g),
            unsynced_for: if self.synced {
                Duration::ZERO
            } else {
                self.started_at.elapsed()
            },
            restarting,
            client_link_down_for,
            client_links_down,
            link_peers,
        }
    }

    /// Every monitor failure is a link without carrier: for how long, the oldest.
    fn link_down_for(&self, now: Instant) -> Option<Duration> {
        let since: Option<Vec<Instant>> = self
            .monitor_failed
            .iter()
            .map(|(name, _)| self.link_down.get(name).copied())
            .collect();
        since?.into_iter().min().map(|o| now.duration_since(o))
    }

    /// A start of the current generation failed here and the cluster has not applied the
    /// report yet (see [`start_failure_pending`]).
    fn start_failure_pending(&mut self, g: &crate::cluster::state::GroupState) -> bool {
        let failed = self
            .failed_start
            .map(|(generation, at)| (generation, at.elapsed()));
        let pending = start_failure_pending(
            failed,
            g.generation,
            g.start_failed.contains_key(&self.ctx.me),
        );
        if !pending {
            self.failed_start = None;
        }
        pending
    }
}
