//! Helpers shared by the stuck-VM and VM-HA integration tests: a fake oned on loopback,
//! clients for it, what its world says.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oneha::opennebula::auth::{Session, parse_endpoint};
use oneha::opennebula::pool::VmRecord;
use oneha::opennebula::xmlrpc::Client;
use oneha_testkit::fake_oned::{FakeOned, Faults, Order, Running, Vms};
use oneha_testkit::vm_xml;

/// The session the fakes accept. Its secret must never show up in any message.
pub const SESSION: &str = "oneadmin:Sup3r-S3cret-Pw";
/// The secret part alone.
pub const SECRET: &str = "Sup3r-S3cret-Pw";
/// A fixed "now" for generated timestamps.
pub const NOW: i64 = 1_700_000_000;

/// The fixture directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opennebula")
}

/// The VMs of a fixture file.
pub fn fixture_vms(name: &str) -> Vms {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture readable");
    Vms::List(vm_xml::load_fixture(&text).expect("fixture loads"))
}

/// `n` generated VMs with these (id, state, lcm, action) overrides.
pub fn generated(n: i64, stuck: &[(i64, i64, i64, i64)]) -> Vms {
    let overrides: BTreeMap<i64, VmRecord> = stuck
        .iter()
        .map(|&(id, s, l, a)| (id, vm_xml::with_state(id, s, l, a, NOW)))
        .collect();
    Vms::Generated { n, overrides }
}

/// Starts a fake oned on 127.0.0.1 with these VMs and faults.
pub async fn fake(vms: Vms, faults: Faults, order: Order) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    FakeOned {
        session: SESSION.into(),
        order,
        faults,
        vms,
        now: NOW,
    }
    .spawn(listener)
    .expect("fake oned starts")
}

/// A client for `endpoint` with the test session.
pub fn client(endpoint: &str, timeout: Duration) -> Client {
    Client::new(
        parse_endpoint(endpoint).expect("endpoint"),
        Session::new(SESSION).expect("session"),
        timeout,
    )
}

/// Writes the session to a file (mode 0600) and returns its path.
pub fn auth_file(dir: &Path) -> PathBuf {
    let p = dir.join("one_auth");
    std::fs::write(&p, format!("{SESSION}\n")).expect("write auth file");
    p
}

/// A loopback port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The test world (tests/fixtures/opennebula/world.yaml).
pub fn test_world() -> oneha_testkit::world::World {
    let text = std::fs::read_to_string(fixtures().join("world.yaml")).expect("world fixture");
    oneha_testkit::world::World::parse(&text, "world.yaml", NOW).expect("world parses")
}

/// Starts a fake oned on 127.0.0.1 serving `world`, saved to `state` if given.
pub async fn fake_world(
    world: oneha_testkit::world::World,
    state: Option<PathBuf>,
) -> (Running, oneha_testkit::world_handle::WorldHandle) {
    let handle = oneha_testkit::world_handle::WorldHandle::new(world, state).expect("world starts");
    (fake_serving(Vms::World(handle.clone())).await, handle)
}

/// Starts a fake oned on 127.0.0.1 serving `vms`.
pub async fn fake_serving(vms: Vms) -> Running {
    fake(vms, Faults::default(), Order::Desc).await
}

/// The `oneha-testkit` binary of this build, next to `oneha` (package `oneha-testkit`:
/// `cargo build --workspace --bins` builds it).
pub fn testkit_bin() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_oneha")).with_file_name("oneha-testkit");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (or `make build`) first",
        p.display()
    );
    p
}

/// Waits (generously, 60 s) until `f` holds, checking every 50 ms.
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A VM of the fake's world: (STATE, LCM_STATE, host of the last history record).
pub fn vm(h: &oneha_testkit::world_handle::WorldHandle, id: i64) -> (i64, i64, Option<i64>) {
    h.read(|w| {
        let v = w.vm(id).expect("vm");
        (v.state, v.lcm(), v.last().map(|r| r.hid))
    })
}

/// Waits until the fake's hook manager finished `runs` hook runs; returns the last of them.
pub async fn hook_done(
    h: &oneha_testkit::world_handle::WorldHandle,
    runs: usize,
) -> oneha_testkit::hem::HookRun {
    wait_until("the hook finished", || h.hook_runs().len() >= runs).await;
    h.hook_runs().remove(runs - 1)
}
