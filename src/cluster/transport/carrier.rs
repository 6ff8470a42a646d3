//! This node's own end of each link: whether the interface holding the link's local address
//! is up with carrier. Followed through netlink events (no polling: nothing to do while
//! nothing changes). Two uses:
//! - a link whose carrier comes back has its peer connections reopened at once
//!   ([`LinkTable::link_back`]) instead of waiting for TCP's next retransmission;
//! - the two-node policy does not fence a peer for a silence that this node's own cable
//!   explains (`policy::liveness::lost_for_since_links_back`), and a node with no carrier on
//!   any link knows it is the one cut off;
//! - the interfaces of the group's floating IPs (the clients' side, which may be none of the
//!   peer links): one without carrier is gossiped, placement avoids the node, and an owner
//!   hands the group over (`policy::client_link`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
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
    /// The followed client interfaces (floating IPs') that have no carrier now (or do not
    /// exist), each since when.
    pub clients_down: BTreeMap<String, Instant>,
}

impl CarrierView {
    /// Every link is known and without carrier: this node is cut off from its peers.
    pub fn all_down(&self) -> bool {
        !self.links.is_empty() && self.links.iter().all(|l| *l == Some(false))
    }

    /// Takes a new reading of the client interfaces at `now` (name, up with carrier).
    pub fn update_clients(&mut self, readings: &[(String, bool)], now: Instant) {
        let before = std::mem::take(&mut self.clients_down);
        self.clients_down = readings
            .iter()
            .filter(|(_, up)| !up)
            .map(|(name, _)| (name.clone(), before.get(name).copied().unwrap_or(now)))
            .collect();
    }

    /// How long a client interface has been without carrier, the longest (None: every one
    /// has it).
    pub fn client_down_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.clients_down
            .values()
            .min()
            .map(|since| now.saturating_duration_since(*since))
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
/// on link `k`; `None`: unspecified, not followed) and of the client interfaces `clients`
/// (by name). Carrier returns reopen the link's connections in `table`. If netlink cannot
/// be used, the view stays unknown (and the rules that need it do nothing) after one
/// warning.
pub fn watch_carrier(
    local: Vec<Option<IpAddr>>,
    clients: Vec<String>,
    table: Arc<LinkTable>,
) -> watch::Receiver<CarrierView> {
    let (tx, rx) = watch::channel(CarrierView {
        links: vec![None; local.len()],
        ..CarrierView::default()
    });
    if local.iter().all(Option::is_none) && clients.is_empty() {
        return rx;
    }
    tokio::spawn(async move {
        if let Err(e) = follow(&local, &clients, &table, &tx).await {
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
    clients: &[String],
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
        let (links, client_links) = read(&nl, local, clients).await?;
        let mut back = Vec::new();
        tx.send_if_modified(|v| {
            let before = v.clone();
            let now = Instant::now();
            back = v.update(links, now);
            v.update_clients(&client_links, now);
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

/// Each link's carrier now, and each client interface's (a missing one has none).
async fn read(
    nl: &rtnetlink::Handle,
    local: &[Option<IpAddr>],
    clients: &[String],
) -> Result<(Vec<Option<bool>>, Vec<(String, bool)>), String> {
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
    let mut named_up = Vec::new();
    let mut links = nl.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(|e| e.to_string())? {
        let f = msg.header.flags;
        let carrier = f.contains(LinkFlags::Up) && f.contains(LinkFlags::LowerUp);
        up.push((msg.header.index, carrier));
        for a in &msg.attributes {
            if let LinkAttribute::IfName(name) = a {
                named_up.push((name.clone(), carrier));
            }
        }
    }
    let links = local
        .iter()
        .map(|ip| {
            let ip = (*ip)?;
            let index = index_of.iter().find(|(a, _)| *a == ip)?.1;
            up.iter().find(|(i, _)| *i == index).map(|(_, u)| *u)
        })
        .collect();
    let client_links = clients
        .iter()
        .map(|c| {
            let carrier = named_up.iter().any(|(n, u)| n == c && *u);
            (c.clone(), carrier)
        })
        .collect();
    Ok((links, client_links))
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

    #[test]
    fn client_interfaces_keep_the_instant_they_went_down() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut v = CarrierView::default();
        let r =
            |eth0: bool, eth1: bool| vec![("eth0".to_string(), eth0), ("eth1".to_string(), eth1)];
        v.update_clients(&r(true, true), at(0));
        assert_eq!(v.client_down_for(at(0)), None, "all up");
        v.update_clients(&r(false, true), at(100));
        v.update_clients(&r(false, false), at(300));
        assert_eq!(
            v.clients_down.get("eth0"),
            Some(&at(100)),
            "kept from the first reading"
        );
        assert_eq!(v.clients_down.get("eth1"), Some(&at(300)));
        assert_eq!(
            v.client_down_for(at(1000)),
            Some(Duration::from_millis(900)),
            "the longest"
        );
        v.update_clients(&r(true, false), at(1100));
        assert_eq!(
            v.client_down_for(at(1100)),
            Some(Duration::from_millis(800))
        );
        v.update_clients(&r(true, true), at(1200));
        assert_eq!(v.client_down_for(at(1200)), None, "all back");
    }
}
