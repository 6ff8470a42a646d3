//! Redundant links between nodes: when each peer was last heard on each link, and which
//! link carries the Raft messages to a peer.
//!
//! Link `k` joins the `k`-th configured address of every node (0-based here, 1-based in
//! `oneha status`). Every link carries keep-alive frames with gossip, so each one's health
//! is known; Raft messages go over one link only ([`route`]): the first one heard from
//! recently, so a link that falls silent is left at once and traffic is not doubled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Which link carries the Raft messages to a peer, given how long ago each link last
/// delivered a frame from it (`None`: never): the first link heard within
/// `silent_after`, else every link.
pub fn route(ages: &[Option<Duration>], silent_after: Duration) -> Route {
    match ages
        .iter()
        .position(|a| a.is_some_and(|a| a <= silent_after))
    {
        Some(k) => Route::One(k),
        None if ages.len() == 1 => Route::One(0),
        None => Route::All,
    }
}

/// The most recent contact over all links (`None`: never heard on any).
pub fn most_recent(ages: &[Option<Duration>]) -> Option<Duration> {
    ages.iter().flatten().min().copied()
}

/// When each peer was last heard on each link: written by the server for every accepted
/// frame, read by the senders (routing) and by `oneha status`/metrics.
#[derive(Debug, Default)]
pub struct LinkTable {
    /// Links of each peer (what it and this node both have).
    links: HashMap<NodeId, usize>,
    heard: Mutex<HashMap<(NodeId, LinkId), Instant>>,
}

impl LinkTable {
    /// A table for these peers, each with its number of shared links.
    pub fn new(peers: impl IntoIterator<Item = (NodeId, usize)>) -> LinkTable {
        LinkTable {
            links: peers.into_iter().collect(),
            heard: Mutex::default(),
        }
    }

    /// Records a frame from `peer` on `link`, now.
    pub fn heard(&self, peer: NodeId, link: LinkId) {
        if let Ok(mut h) = self.heard.lock() {
            h.insert((peer, link), Instant::now());
        }
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
            assert_eq!(route(ages, SILENT), *want, "{why}: {ages:?}");
        }
    }

    #[test]
    fn most_recent_contact_over_links() {
        let rows: &[(&[Option<Duration>], Option<Duration>)] = &[
            (&[None], None),
            (&[ms(7)], ms(7)),
            (&[ms(3000), ms(20)], ms(20)),
            (&[None, ms(20)], ms(20)),
            (&[ms(5), None], ms(5)),
            (&[None, None], None),
        ];
        for (ages, want) in rows {
            assert_eq!(most_recent(ages), *want, "{ages:?}");
        }
    }

    #[test]
    fn table_records_per_peer_and_link() {
        let t = LinkTable::new([(2, 2), (3, 1)]);
        assert_eq!(t.ages(2), vec![None, None]);
        t.heard(2, 1);
        let a = t.ages(2);
        assert!(a[0].is_none() && a[1].is_some(), "{a:?}");
        assert_eq!(t.ages(3), vec![None]);
        assert!(t.ages(9).is_empty(), "unknown peer: no links");
    }
}
