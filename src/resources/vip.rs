//! The floating IP: added and removed over rtnetlink, announced with gratuitous ARP (IPv4)
//! or unsolicited neighbour advertisements (IPv6), and never added while another host
//! answers for it.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use tokio::task::JoinHandle;

use super::arp::{LinkSocket, Mac, Port};
use super::{Fault, IpSpec, ResourceState};

/// Pause between the frames of one gratuitous ARP burst.
const BURST_SPACING: Duration = Duration::from_millis(100);

/// A floating IP resource.
pub struct Vip {
    spec: IpSpec,
    /// Follow-up announcements (rest of the first burst, second burst, refresh).
    announcer: Mutex<Option<JoinHandle<()>>>,
    /// Set once the start's bursts are out (the refresh may go on after).
    bursts_done: Arc<std::sync::atomic::AtomicBool>,
    /// Kept open: closing a packet socket costs a kernel grace period.
    sender: Mutex<Option<Arc<LinkSocket>>>,
    /// The monitor's netlink connection, kept between monitors (dropped on any error and
    /// opened again by the next monitor).
    monitor_nl: Mutex<Option<Handle>>,
}

/// What netlink says about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Hardware address, if it has one.
    pub mac: Option<Mac>,
    /// Administratively up and with carrier (`UP` and `LOWER_UP`).
    pub up: bool,
}

impl LinkInfo {
    /// Where to send ARP frames, if the interface has a hardware address.
    pub fn port(&self) -> Option<Port> {
        self.mac.map(|mac| Port {
            ifindex: self.index,
            mac,
        })
    }
}

impl Vip {
    /// A floating IP with these settings.
    pub fn new(spec: IpSpec) -> Vip {
        Vip {
            spec,
            announcer: Mutex::new(None),
            bursts_done: Arc::default(),
            sender: Mutex::new(None),
            monitor_nl: Mutex::new(None),
        }
    }

    /// Adds the address (after the duplicate address probe) and announces it. Succeeds
    /// without a probe if the address is already here.
    pub async fn start(&self) -> Result<(), Fault> {
        let nl = connect()?;
        let link = self.usable_link(&nl).await?;
        if self.find_address(&nl, link.index).await?.is_none() {
            if self.spec.conflict_check {
                self.check_conflict(&link).await?;
            }
            let mut add = nl
                .address()
                .add(link.index, self.spec.address, self.spec.prefix);
            if self.spec.address.is_ipv6() {
                // oneha probed for a holder itself: without NODAD the kernel's own DAD
                // would keep the address tentative (unusable) for one to two seconds.
                add.message_mut().header.flags |= AddressHeaderFlags::Nodad;
            }
            add.execute().await.map_err(|e| {
                format!(
                    "cannot add {}/{} to {}: {e}",
                    self.spec.address, self.spec.prefix, self.spec.interface
                )
            })?;
        }
        self.announce(&link).await
    }

    /// Removes the address; succeeds if it is not there.
    pub async fn stop(&self) -> Result<(), Fault> {
        // No announcement may go out once the address is gone: wait for the task to end.
        if let Some(task) = self.take_announcer() {
            task.abort();
            let _ = task.await;
        }
        let nl = connect()?;
        let Some(link) = link_info(&nl, &self.spec.interface).await? else {
            return Ok(()); // no interface, no address
        };
        if let Some(msg) = self.find_address(&nl, link.index).await? {
            nl.address().del(msg).execute().await.map_err(|e| {
                format!(
                    "cannot remove {} from {}: {e}",
                    self.spec.address, self.spec.interface
                )
            })?;
        }
        Ok(())
    }

    /// Running: the address is on the interface and the link is up. Stopped: the address
    /// is not there. Link down: the address is there but the link is down (not up, or no
    /// carrier). Failed: no interface.
    pub async fn monitor(&self) -> Result<ResourceState, Fault> {
        let kept = self.monitor_nl.lock().ok().and_then(|k| k.clone());
        let nl = match kept {
            Some(nl) => nl,
            None => connect()?,
        };
        let state = self.monitor_with(&nl).await;
        if let Ok(mut k) = self.monitor_nl.lock() {
            *k = state.is_ok().then_some(nl);
        }
        state
    }

    async fn monitor_with(&self, nl: &Handle) -> Result<ResourceState, Fault> {
        let Some(link) = link_info(nl, &self.spec.interface).await? else {
            return Ok(ResourceState::Failed(format!(
                "interface {} not found",
                self.spec.interface
            )));
        };
        Ok(match self.find_address(nl, link.index).await? {
            None => ResourceState::Stopped,
            Some(_) if !link.up => ResourceState::LinkDown(format!(
                "{} is on {}, but the link is down (no carrier or not up)",
                self.spec.address, self.spec.interface
            )),
            Some(_) => ResourceState::Running,
        })
    }

    /// Waits for the follow-up bursts of the last start (not for the periodic refresh,
    /// which goes on while the address is held).
    pub async fn wait_announced(&self) {
        // Polled rather than awaited: the handle stays in place for `stop` to abort.
        while !self.bursts_done.load(std::sync::atomic::Ordering::Relaxed)
            && self
                .announcer
                .lock()
                .is_ok_and(|a| a.as_ref().is_some_and(|t| !t.is_finished()))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn usable_link(&self, nl: &Handle) -> Result<LinkInfo, Fault> {
        let iface = &self.spec.interface;
        let link = link_info(nl, iface).await?.ok_or_else(|| {
            format!("interface {iface} not found; check `interface` in the resource's config")
        })?;
        if !link.up {
            return Err(format!(
                "interface {iface} is down (not up or no carrier); not taking the address over"
            )
            .into());
        }
        Ok(link)
    }

    async fn check_conflict(&self, link: &LinkInfo) -> Result<(), Fault> {
        let (ip, Some(port)) = (self.spec.address, link.port()) else {
            return Ok(()); // no hardware address: no neighbours to ask
        };
        let sock = LinkSocket::listener(port.ifindex, ip).map_err(raw_socket_error)?;
        let holder = sock.find_holder(&port, ip, self.spec.conflict_wait).await;
        sock.close_in_background();
        let holder = holder
            .map_err(|e| format!("duplicate address probe on {}: {e}", self.spec.interface))?;
        match holder {
            Some(mac) => Err(Fault::Conflict {
                address: self.spec.address,
                mac: mac.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Sends the first announcement pair now and leaves the rest to a background task.
    async fn announce(&self, link: &LinkInfo) -> Result<(), Fault> {
        let (ip, Some(port)) = (self.spec.address, link.port()) else {
            return Ok(());
        };
        if self.spec.garp_count == 0 {
            return Ok(());
        }
        let sock = self.sender()?;
        sock.announce(&port, ip)
            .await
            .map_err(|e| format!("{} on {}: {e}", announcement(ip), self.spec.interface))?;
        self.bursts_done
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let plan = Plan {
            count: self.spec.garp_count,
            repeat_after: self.spec.garp_repeat_after,
            refresh: self.spec.garp_refresh,
            bursts_done: self.bursts_done.clone(),
        };
        let task = tokio::spawn(plan.run(sock, port, ip));
        if let Ok(mut slot) = self.announcer.lock()
            && let Some(old) = slot.replace(task)
        {
            old.abort();
        }
        Ok(())
    }

    /// The sending socket, opened on first use.
    fn sender(&self) -> Result<Arc<LinkSocket>, Fault> {
        let mut slot = self
            .sender
            .lock()
            .map_err(|_| Fault::Failed("ARP sender lock poisoned".into()))?;
        if let Some(sock) = slot.as_ref() {
            return Ok(sock.clone());
        }
        let sock = Arc::new(LinkSocket::sender().map_err(raw_socket_error)?);
        *slot = Some(sock.clone());
        Ok(sock)
    }

    /// The address message of the floating IP on interface `index`, if it is there.
    async fn find_address(&self, nl: &Handle, index: u32) -> Result<Option<AddressMessage>, Fault> {
        Ok(addresses(nl, index)
            .await?
            .into_iter()
            .find(|(ip, _)| *ip == self.spec.address)
            .map(|(_, msg)| msg))
    }

    fn take_announcer(&self) -> Option<JoinHandle<()>> {
        self.announcer.lock().ok().and_then(|mut a| a.take())
    }
}

impl Drop for Vip {
    fn drop(&mut self) {
        if let Some(task) = self.take_announcer() {
            task.abort();
        }
    }
}

/// When to repeat the announcement after the first pair.
struct Plan {
    count: u32,
    repeat_after: Duration,
    refresh: Duration,
    bursts_done: Arc<std::sync::atomic::AtomicBool>,
}

impl Plan {
    async fn run(self, sock: Arc<LinkSocket>, port: Port, ip: IpAddr) {
        let burst = |frames: u32| {
            let sock = &sock;
            async move {
                for i in 0..frames {
                    if i > 0 {
                        tokio::time::sleep(BURST_SPACING).await;
                    }
                    if let Err(e) = sock.announce(&port, ip).await {
                        tracing::warn!("{} for {ip}: {e}", announcement(ip));
                    }
                }
            }
        };
        tokio::time::sleep(BURST_SPACING).await;
        burst(self.count.saturating_sub(1)).await;
        if !self.repeat_after.is_zero() {
            tokio::time::sleep(self.repeat_after).await;
            burst(self.count).await;
        }
        self.bursts_done
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.refresh.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(self.refresh).await;
            burst(1).await;
        }
    }
}

/// What announces `ip`, in words.
fn announcement(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "gratuitous ARP",
        IpAddr::V6(_) => "unsolicited neighbour advertisement",
    }
}

fn raw_socket_error(e: std::io::Error) -> Fault {
    Fault::Failed(format!(
        "cannot open a packet socket for ARP/neighbour discovery (needs CAP_NET_RAW): {e}"
    ))
}

/// A netlink connection in the current network namespace; needs a tokio runtime.
pub fn connect() -> Result<Handle, Fault> {
    let (conn, handle, _) = rtnetlink::new_connection()
        .map_err(|e| Fault::Failed(format!("cannot open a netlink socket: {e}")))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The interface named `name`, or `None` if there is none.
pub async fn link_info(nl: &Handle, name: &str) -> Result<Option<LinkInfo>, Fault> {
    let mut links = nl.link().get().match_name(name.to_string()).execute();
    let msg = match links.try_next().await {
        Ok(Some(msg)) => msg,
        Ok(None) => return Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot read interface {name}: {e}").into()),
    };
    let mac = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => Mac::from_slice(bytes),
        _ => None,
    });
    let flags = msg.header.flags;
    Ok(Some(LinkInfo {
        index: msg.header.index,
        mac,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
    }))
}

/// Every address on interface `index`.
pub async fn addresses(nl: &Handle, index: u32) -> Result<Vec<(IpAddr, AddressMessage)>, Fault> {
    let mut found = Vec::new();
    let mut stream = nl.address().get().set_link_index_filter(index).execute();
    loop {
        let msg = match stream.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(found),
            Err(e) => return Err(format!("cannot list addresses: {e}").into()),
        };
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
        // point-to-point links); IPv6 has only IFA_ADDRESS.
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let addr = local.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        if let Some(ip) = addr {
            found.push((ip, msg));
        }
    }
}
