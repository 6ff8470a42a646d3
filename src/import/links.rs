//! A member's peer addresses: its `<clusternode name>` (link 1) and its `<altname name>`
//! (CMAN's second ring, link 2), each resolved on this machine the same way, else a
//! documentation placeholder the operator must fill in.

use std::net::{IpAddr, SocketAddr};

use super::Options;
use super::host::Host;
use super::plan::{Noted, Notes};
use super::xml::Element;

/// `name` as an address: an IP literal as written, else what this machine resolves it to;
/// `None` when it does not resolve or the address is already some other link's.
fn resolve(host: &dyn Host, name: &str, used: &[IpAddr]) -> Option<IpAddr> {
    let ip = name.parse::<IpAddr>().ok().or_else(|| host.resolve(name))?;
    (!used.contains(&ip)).then_some(ip)
}

/// Which network a link is on, as the notes name it: (`cluster network`, `cluster`).
pub(super) type Network = (&'static str, &'static str);
/// The first link.
pub(super) const CLUSTER: Network = ("cluster network", "cluster");
/// The second link (`<altname>`).
const SECOND: Network = ("second (redundant) network", "second network");

/// The address of a link named `name` (a host name or IP), or a placeholder and a FILL IN
/// note naming `key` (`nodes[0].address`).
pub(super) fn link_address(
    host: &dyn Host,
    name: &str,
    (what, short): Network,
    key: &str,
    used: &mut Vec<IpAddr>,
    opts: &Options,
    notes: &mut Notes,
) -> Noted<String> {
    match resolve(host, name, used) {
        Some(ip) => {
            used.push(ip);
            Noted::with(
                SocketAddr::new(ip, opts.port).to_string(),
                format!("{name} resolved here; check it is the {what} address"),
            )
        }
        None => {
            let addr = placeholder(used, opts);
            notes.fill(format!(
                "{key}: {name} does not resolve here; replace the placeholder {addr} with its \
                 address on the {what}"
            ));
            Noted::with(
                addr,
                format!("FILL IN: {name}'s {short} address (placeholder)"),
            )
        }
    }
}

/// The `<altname>` of clusternode `node` (index `i`): its name as the second link's
/// address; `port` and `mcast` are corosync's (UDP, multicast), not oneha's.
pub(super) fn altname(
    node: &Element,
    i: usize,
    host: &dyn Host,
    used: &mut Vec<IpAddr>,
    opts: &Options,
    notes: &mut Notes,
) -> Option<Noted<String>> {
    let mut alts = node.children_named("altname");
    let alt = alts.next()?;
    for extra in alts {
        notes.skip(
            extra.line,
            "a second <altname>: CMAN uses one (ring 1); oneha takes the first",
        );
    }
    for (k, v) in &alt.attrs {
        match k.as_str() {
            "name" => {}
            "port" | "mcast" => notes.skip(
                alt.line,
                format!(
                    "<altname {k}=\"{v}\"> is corosync's ring setting; oneha's second link \
                     uses TCP port {}",
                    opts.port
                ),
            ),
            _ => notes.skip(alt.line, format!("<altname {k}=\"{v}\"> not translated")),
        }
    }
    let Some(name) = alt
        .attr("name")
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
    else {
        notes.skip(alt.line, "<altname> without a usable name; no second link");
        return None;
    };
    Some(link_address(
        host,
        name,
        SECOND,
        &format!("nodes[{i}].addresses[1]"),
        used,
        opts,
        notes,
    ))
}

/// A documentation address `192.0.2.N:PORT`, not yet in `used`, for a peer address the
/// operator must fill in.
pub(super) fn placeholder(used: &mut Vec<IpAddr>, opts: &Options) -> String {
    let ip = (1..=254u8)
        .map(|n| IpAddr::from([192, 0, 2, n]))
        .find(|ip| !used.contains(ip))
        .unwrap_or(IpAddr::from([192, 0, 2, 254]));
    used.push(ip);
    SocketAddr::new(ip, opts.port).to_string()
}
