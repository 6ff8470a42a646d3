//! This node's own end of each link: whether the interface holding the link's local address
//! is up with carrier. Followed through netlink events (no polling: nothing to do while
//! nothing changes). Two uses:
//! - a link whose carrier comes back has its peer connections reopened at once
//!   ([`LinkTable::link_back`]) instead of waiting for TCP's next retransmission;
//! - the two-node policy does not fence a peer for a silence that this node's own cable
//!   explains (`policy::liveness::lost_for_since_links_back`), and a node with no carrier on
//!   any link knows it is the one cut off.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkFlags;
use rtnetlink::{MulticastGroup, new_connection, new_multicast_connection};
use tokio::sync::watch;

use super::links::{LinkId, LinkTable};

/// This node's side of its links, as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CarrierView {
    /// Per link: `Some(true)` up with carrier, `Some(false)` without, `None` unknown (no
    /// local address configured for it, or not found on any interface).
    pub links: Vec<Option<bool>>,
    /// Since when every link has been without carrier (`None`: not all down now).
    pub all_down_since: Option<Instant>,
    /// When the links last came back after all of them were down (`None`: not since start).
    pub back_at: Option<Instant>,
}

impl CarrierView {
    /// Every link is known and without carrier: this node is cut off from its peers.
    pub fn all_down(&self) -> bool {
        !self.links.is_empty() && self.links.iter().all(|l| *l == Some(false))
    }

    /// Takes a new reading at `now`; returns the links whose carrier came back (down before,
    /// up now).
    pub fn update(&mut self, links: Vec<Option<bool>>, now: Instant) -> Vec<LinkId> {
        let back = links
            .iter()
            .enumerate()
            .filter(|(k, up)| **up == Some(true) && self.links.get(*k) == Some(&Some(false)))
            .map(|(k, _)| k)
            .collect();
        let was_down = self.all_down();
        self.links = links;
        match (was_down, self.all_down()) {
            (false, true) => self.all_down_since = Some(now),
            (true, false) => {
                self.all_down_since = None;
                self.back_at = Some(now);
            }
            _ => {}
        }
        back
    }
}

/// Starts following the carrier of the interfaces holding `local[k]` (this node's address
/// on link `k`; `None`: unspecified, not followed). Carrier returns reopen the link's
/// connections in `table`. If netlink cannot be used, the view stays unknown (and the rules
/// that need it do nothing) after one warning.
pub fn watch_carrier(
    local: Vec<Option<IpAddr>>,
    table: Arc<LinkTable>,
) -> watch::Receiver<CarrierView> {
    let (tx, rx) = watch::channel(CarrierView {
        links: vec![None; local.len()],
        ..CarrierView::default()
    });
    if local.iter().all(Option::is_none) {
        return rx;
    }
    tokio::spawn(async move {
        if let Err(e) = follow(&local, &table, &tx).await {
            tracing::warn!(
                "cannot follow the links' carrier through netlink ({e}): a cable pulled here \
                 is seen only as silent peers"
            );
        }
    });
    rx
}

async fn follow(
    local: &[Option<IpAddr>],
    table: &LinkTable,
    tx: &watch::Sender<CarrierView>,
) -> Result<(), String> {
    let (conn, _, mut events) = new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let (conn, nl, _) = new_connection().map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    loop {
        let links = read(&nl, local).await?;
        let mut back = Vec::new();
        tx.send_if_modified(|v| {
            let before = v.clone();
            back = v.update(links, Instant::now());
            *v != before
        });
        for k in back {
            tracing::info!(
                link = k + 1,
                "carrier back on link {}: reconnecting to the peers now",
                k + 1
            );
            table.link_back(k);
        }
        // Any link or address event: read everything again (they are rare).
        if events.next().await.is_none() {
            return Err("the netlink event stream ended".into());
        }
        // Coalesce a burst (an interface going down sends several messages).
        while let Ok(Some(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(5), events.next()).await
        {}
    }
}

/// Each link's carrier now.
async fn read(
    nl: &rtnetlink::Handle,
    local: &[Option<IpAddr>],
) -> Result<Vec<Option<bool>>, String> {
    let mut index_of = Vec::new();
    let mut addrs = nl.address().get().execute();
    while let Some(msg) = addrs.try_next().await.map_err(|e| e.to_string())? {
        for a in &msg.attributes {
            if let &AddressAttribute::Address(ip) | &AddressAttribute::Local(ip) = a {
                index_of.push((ip, msg.header.index));
            }
        }
    }
    let mut up = Vec::new();
    let mut links = nl.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(|e| e.to_string())? {
        let f = msg.header.flags;
        up.push((
            msg.header.index,
            f.contains(LinkFlags::Up) && f.contains(LinkFlags::LowerUp),
        ));
    }
    Ok(local
        .iter()
        .map(|ip| {
            let ip = (*ip)?;
            let index = index_of.iter().find(|(a, _)| *a == ip)?.1;
            up.iter().find(|(i, _)| *i == index).map(|(_, u)| *u)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn readings_table() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut v = CarrierView {
            links: vec![None, None],
            ..CarrierView::default()
        };
        // (reading, links that came back, all down, down since, back at)
        type Row = (
            &'static [Option<bool>],
            &'static [LinkId],
            bool,
            Option<u64>,
            Option<u64>,
            &'static str,
        );
        let rows: &[Row] = &[
            (
                &[Some(true), Some(true)],
                &[],
                false,
                None,
                None,
                "start: both up, nothing came back",
            ),
            (
                &[Some(false), Some(true)],
                &[],
                false,
                None,
                None,
                "one down: not cut off",
            ),
            (
                &[Some(false), Some(false)],
                &[],
                true,
                Some(2),
                None,
                "both down: cut off",
            ),
            (
                &[Some(false), Some(false)],
                &[],
                true,
                Some(2),
                None,
                "still down: same instant",
            ),
            (
                &[Some(true), Some(false)],
                &[0],
                false,
                None,
                Some(4),
                "first back",
            ),
            (
                &[Some(true), Some(true)],
                &[1],
                false,
                None,
                Some(4),
                "second back",
            ),
            (
                &[None, Some(false)],
                &[],
                false,
                None,
                Some(4),
                "one unknown: never cut off",
            ),
            (
                &[Some(true), Some(true)],
                &[1],
                false,
                None,
                Some(4),
                "unknown then up: not back",
            ),
        ];
        for (i, (reading, back, down, since, back_at, why)) in rows.iter().enumerate() {
            let got = v.update(reading.to_vec(), at(i as u64));
            assert_eq!(got, back.to_vec(), "{why}: came back");
            assert_eq!(v.all_down(), *down, "{why}: all down");
            assert_eq!(v.all_down_since, since.map(at), "{why}: since");
            assert_eq!(v.back_at, back_at.map(at), "{why}: back at");
        }
        assert!(!CarrierView::default().all_down(), "no link: not cut off");
    }
}
