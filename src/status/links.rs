//! The links of a member in `oneha status`: compact (`links 1:up 2:DOWN`) in the table,
//! one line each with `--verbose`.

use serde::{Deserialize, Serialize};

use super::ago;

/// One link towards a member, as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkStatus {
    /// Link number, 1-based (the position in `addresses`).
    pub link: usize,
    /// The member's address on this link.
    pub address: String,
    /// A frame arrived on this link within the peer timeout.
    pub up: bool,
    /// Milliseconds since the last frame on this link (None: never since the agent started).
    pub last_heard_ms: Option<u64>,
}

/// `links 1:up 2:DOWN` (empty for fewer than two links: one link is the member's status).
pub fn compact(links: &[LinkStatus]) -> String {
    if links.len() < 2 {
        return String::new();
    }
    let states: Vec<String> = links
        .iter()
        .map(|l| format!("{}:{}", l.link, if l.up { "up" } else { "DOWN" }))
        .collect();
    format!("links {}", states.join(" "))
}

/// One line per link: `link 2 [2001:db8:2::2]:7400  DOWN  last heard 12.0s ago`.
pub fn verbose(links: &[LinkStatus]) -> Vec<String> {
    links
        .iter()
        .map(|l| {
            format!(
                "link {} {}  {}  last heard {}",
                l.link,
                l.address,
                if l.up { "up" } else { "DOWN" },
                ago(l.last_heard_ms)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(link: usize, up: bool, ms: Option<u64>) -> LinkStatus {
        LinkStatus {
            link,
            address: format!("192.0.2.{link}:7400"),
            up,
            last_heard_ms: ms,
        }
    }

    #[test]
    fn compact_and_verbose_forms() {
        assert_eq!(compact(&[link(1, true, Some(5))]), "");
        assert_eq!(
            compact(&[link(1, true, Some(5)), link(2, false, None)]),
            "links 1:up 2:DOWN"
        );
        let v = verbose(&[link(1, true, Some(5)), link(2, false, Some(12_000))]);
        assert_eq!(
            v,
            [
                "link 1 192.0.2.1:7400  up  last heard 5ms ago",
                "link 2 192.0.2.2:7400  DOWN  last heard 12.0s ago"
            ]
        );
        // Eight links still fit the table's line budget.
        let eight: Vec<LinkStatus> = (1..=8).map(|k| link(k, k % 2 == 0, None)).collect();
        assert!(compact(&eight).len() < 60, "{}", compact(&eight));
    }
}
