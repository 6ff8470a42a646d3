//! Redundant links between nodes: when each peer was last heard on each link, and which
//! link carries the Raft messages to a peer.
//!
//! Link `k` joins the `k`-th configured address of every node (0-based here, 1-based in
//! `oneha status`). Every link carries keep-alive frames with gossip, so each one's health
//! is known; Raft messages go over one link only ([`route`]): the first one heard from
//! recently whose outgoing connection is up, so a link that falls silent is left at once, a
//! link broken only towards the peer is left once its connection fails (HTTP/2 keep-alive),
//! and traffic is not doubled.
//!
//! A link that comes back (its carrier returns here, or the peer reconnects on it after a
//! silence) has its connections reopened at once ([`LinkTable::kicks`]): an old connection
//! would otherwise deliver only at TCP's next retransmission, which backs off to seconds
//! during an outage, and a peer would stay lost well after the cable is back.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::super::state::NodeId;

/// A link's index in the nodes' `addresses` (0-based).
pub type LinkId = usize;

/// Where the Raft messages to one peer go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Over this link only.
    One(LinkId),
    /// Over every link (none heard from recently: whichever works delivers; Raft ignores
    /// the duplicates).
    All,
}

/// One link towards a peer, as the sender sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    /// How long ago it last delivered a frame from the peer (`None`: never).
    pub age: Option<Duration>,
    /// This node's connection to the peer on it is established.
    pub connected: bool,
}

/// Which link carries the Raft messages to a peer: the first link heard within
/// `silent_after` whose connection is up, else every link.
pub fn route(links: &[LinkState], silent_after: Duration) -> Route {
    match links
        .iter()
        .position(|l| l.connected && l.age.is_some_and(|a| a <= silent_after))
    {
        Some(k) => Route::One(k),
        None if links.len() == 1 => Route::One(0),
        None => Route::All,
    }
}

/// When each peer was last heard on each link: written by the server for every accepted
/// frame, read by the senders (routing) and by `oneha status`/metrics.
#[derive(Debug, Default)]
pub struct LinkTable {
    /// Links of each peer (what it and this node both have).
    links: HashMap<NodeId, usize>,
    heard: Mutex<HashMap<(NodeId, LinkId), Instant>>,
    connected: Mutex<HashSet<(NodeId, LinkId)>>,
    /// A counter per peer and link, bumped to make its client reconnect now.
    kicks: HashMap<(NodeId, LinkId), watch::Sender<u64>>,
    /// A link that delivered nothing for this long is silent.
    silent_after: Duration,
}

impl LinkTable {
    /// A table for these peers, each with its number of shared links; a link that
    /// delivered nothing for `silent_after` counts as silent.
    pub fn new(
        peers: impl IntoIterator<Item = (NodeId, usize)>,
        silent_after: Duration,
    ) -> LinkTable {
        let links: HashMap<NodeId, usize> = peers.into_iter().collect();
        let kicks = links
            .iter()
            .flat_map(|(&p, &n)| (0..n).map(move |k| ((p, k), watch::channel(0).0)))
            .collect();
        LinkTable {
            links,
            heard: Mutex::default(),
            connected: Mutex::default(),
            kicks,
            silent_after,
        }
    }

    /// The reconnect requests for this node's client of `peer` on `link`: the value
    /// changes when the client should drop its connection and open a new one now.
    pub fn kicks(&self, peer: NodeId, link: LinkId) -> watch::Receiver<u64> {
        match self.kicks.get(&(peer, link)) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(0).1,
        }
    }

    /// This node's carrier on `link` came back: every client on it reconnects now.
    pub fn link_back(&self, link: LinkId) {
        for ((_, k), tx) in &self.kicks {
            if *k == link {
                tx.send_modify(|n| *n += 1);
            }
        }
    }

    /// `peer` opened a new connection to this node on `link`. If it had been silent there,
    /// it saw the link break too, and this node's own connection to it is as stale as its
    /// was: reconnect it now (returns whether it asked). A peer heard recently, or never,
    /// asks nothing (start-up, a routine reconnection).
    pub fn peer_reconnected(&self, peer: NodeId, link: LinkId) -> bool {
        let age = self.ages(peer).get(link).copied().flatten();
        let stale = age.is_some_and(|a| a > self.silent_after);
        if stale && let Some(tx) = self.kicks.get(&(peer, link)) {
            tx.send_modify(|n| *n += 1);
        }
        stale
    }

    /// Records a frame from `peer` on `link`, now.
    pub fn heard(&self, peer: NodeId, link: LinkId) {
        if let Ok(mut h) = self.heard.lock() {
            h.insert((peer, link), Instant::now());
        }
    }

    /// Records whether this node's connection to `peer` on `link` is established.
    pub fn set_connected(&self, peer: NodeId, link: LinkId, up: bool) {
        if let Ok(mut c) = self.connected.lock() {
            if up {
                c.insert((peer, link));
            } else {
                c.remove(&(peer, link));
            }
        }
    }

    /// Each link towards `peer`, for [`route`].
    pub fn states(&self, peer: NodeId) -> Vec<LinkState> {
        let connected = self.connected.lock().map(|c| c.clone()).unwrap_or_default();
        self.ages(peer)
            .into_iter()
            .enumerate()
            .map(|(k, age)| LinkState {
                age,
                connected: connected.contains(&(peer, k)),
            })
            .collect()
    }

    /// How long ago `peer` was last heard on each of its links (`None`: never).
    pub fn ages(&self, peer: NodeId) -> Vec<Option<Duration>> {
        let n = self.links.get(&peer).copied().unwrap_or(0);
        let now = Instant::now();
        let Ok(h) = self.heard.lock() else {
            return vec![None; n];
        };
        (0..n)
            .map(|k| h.get(&(peer, k)).map(|at| now.duration_since(*at)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENT: Duration = Duration::from_millis(400);

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    /// Heard `v` ms ago, connected.
    fn up(v: u64) -> LinkState {
        LinkState {
            age: ms(v),
            connected: true,
        }
    }

    #[test]
    fn route_table() {
        let rows: &[(&[Option<Duration>], Route, &str)] = &[
            (&[ms(10)], Route::One(0), "one link, heard"),
            (
                &[ms(5000)],
                Route::One(0),
                "one link, silent: still the only one",
            ),
            (&[None], Route::One(0), "one link, never heard"),
            (&[ms(10), ms(10)], Route::One(0), "both heard: the first"),
            (
                &[ms(10), ms(5000)],
                Route::One(0),
                "second silent: the first",
            ),
            (
                &[ms(401), ms(10)],
                Route::One(1),
                "first silent: fail over at once",
            ),
            (&[None, ms(10)], Route::One(1), "first never heard"),
            (
                &[ms(400), ms(10)],
                Route::One(0),
                "at the limit: still heard",
            ),
            (&[ms(900), ms(800)], Route::All, "all silent: every link"),
            (&[None, None], Route::All, "nothing heard yet: every link"),
            (&[None, ms(999), ms(3)], Route::One(2), "third link"),
            (&[], Route::All, "no shared link"),
        ];
        for (ages, want, why) in rows {
            let links: Vec<LinkState> = ages
                .iter()
                .map(|&age| LinkState {
                    age,
                    connected: true,
                })
                .collect();
            assert_eq!(route(&links, SILENT), *want, "{why}: {ages:?}");
        }
    }

    /// A link heard from but whose outgoing connection is down (broken one way, towards the
    /// peer) does not carry the Raft messages.
    #[test]
    fn route_skips_links_whose_connection_is_down() {
        let down = |v| LinkState {
            age: ms(v),
            connected: false,
        };
        let rows: &[(&[LinkState], Route, &str)] = &[
            (&[down(10), up(10)], Route::One(1), "first not connected"),
            (&[up(10), down(10)], Route::One(0), "second not connected"),
            (&[down(10), down(10)], Route::All, "none connected"),
            (
                &[down(10), up(900)],
                Route::All,
                "one silent, other not connected",
            ),
            (&[down(10)], Route::One(0), "one link: the only one"),
        ];
        for (links, want, why) in rows {
            assert_eq!(route(links, SILENT), *want, "{why}: {links:?}");
        }
    }

    #[test]
    fn table_records_per_peer_and_link() {
        let t = LinkTable::new([(2, 2), (3, 1)], SILENT);
        assert_eq!(t.ages(2), vec![None, None]);
        t.heard(2, 1);
        let a = t.ages(2);
        assert!(a[0].is_none() && a[1].is_some(), "{a:?}");
        t.set_connected(2, 1, true);
        let s = t.states(2);
        assert!(!s[0].connected && s[1].connected, "{s:?}");
        t.set_connected(2, 1, false);
        assert!(!t.states(2)[1].connected);
        assert_eq!(t.ages(3), vec![None]);
        assert!(t.ages(9).is_empty(), "unknown peer: no links");
    }

    #[test]
    fn kicks_ask_the_clients_of_a_link_to_reconnect() {
        let t = LinkTable::new([(2, 2), (3, 2)], SILENT);
        let (mut a, b, mut c) = (t.kicks(2, 0), t.kicks(2, 1), t.kicks(3, 0));
        t.link_back(0);
        assert!(a.has_changed().unwrap() && c.has_changed().unwrap());
        assert!(
            !b.has_changed().unwrap(),
            "another link's client is left alone"
        );
        a.borrow_and_update();
        c.borrow_and_update();
        // A peer never heard (start-up) or heard just now reconnects: nothing to do here.
        assert!(!t.peer_reconnected(2, 1));
        t.heard(2, 1);
        assert!(!t.peer_reconnected(2, 1));
        assert!(!b.has_changed().unwrap());
        // A peer silent for longer than the limit reconnects: ours to it is stale too.
        if let Ok(mut h) = t.heard.lock() {
            h.insert((2, 1), Instant::now() - SILENT * 2);
        }
        assert!(t.peer_reconnected(2, 1));
        assert!(b.has_changed().unwrap());
        assert!(!a.has_changed().unwrap() && !c.has_changed().unwrap());
        assert!(!t.peer_reconnected(9, 0), "unknown peer");
    }
}
