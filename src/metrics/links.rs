//! Per-link metrics: whether each link towards each member is up, and how long ago it
//! last delivered a frame.

use super::{Out, flag};
use crate::status::StatusReport;

/// `oneha_peer_link_up{peer,link}` and `oneha_peer_link_last_heard_seconds{peer,link}`.
pub(super) fn render_links(o: &mut Out, s: &StatusReport) {
    o.family(
        "oneha_peer_link_up",
        "gauge",
        "1 when a frame from the member arrived on this link (1-based, the position in \
         `addresses`) within the peer timeout.",
    );
    for m in &s.members {
        for l in &m.links {
            let link = l.link.to_string();
            o.sample(
                "oneha_peer_link_up",
                &[("peer", &m.name), ("link", &link)],
                flag(l.up),
            );
        }
    }
    o.family(
        "oneha_peer_link_last_heard_seconds",
        "gauge",
        "Seconds since the member was last heard on this link (absent: never since start).",
    );
    for m in &s.members {
        for l in &m.links {
            if let Some(ms) = l.last_heard_ms {
                let link = l.link.to_string();
                o.sample(
                    "oneha_peer_link_last_heard_seconds",
                    &[("peer", &m.name), ("link", &link)],
                    ms as f64 / 1000.0,
                );
            }
        }
    }
}
