//! VM-HA cases in the cluster's journal, on real agents over loopback: a case opened through
//! one agent's hook socket is replicated to every member (any node shows it), a second ERROR
//! of the same host follows the open case instead of opening another, the hook socket takes
//! only VM-HA requests, and an operator's acknowledgement is journaled for everyone.
//! (The local agents cannot start the group, so no node works the case here: the owner's
//! service and the front-end failover are for the real-host tests.)

mod local;

use std::time::Duration;

use local::{LocalCluster, wait_for};
use oneha::admin::{self, AdminRequest, AdminResponse};
use oneha::vmha::case::{Case, Fenced};
use oneha::vmha::cases::VmHaRequest;
use oneha::vmha::host::HostInfo;
use oneha::vmha::input::{Flags, Mode};

const LONG: Duration = Duration::from_secs(20);

fn hook_call(socket: &std::path::Path, req: &AdminRequest) -> AdminResponse {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(admin::call(socket, req, Duration::from_secs(15)))
        .expect("the hook socket answers")
}

fn cases(c: &LocalCluster, i: usize) -> Vec<Case> {
    let r = c
        .call(i, &AdminRequest::VmHa(VmHaRequest::List))
        .expect("call");
    assert!(r.ok, "{:?}", r.error);
    serde_json::from_value(r.result.expect("result")).expect("cases")
}

#[test]
fn a_case_opened_through_the_hook_socket_is_journaled_for_every_member() {
    let c = LocalCluster::start("vmhacase", &["frontend", "frontend", "witness"], "");
    c.wait_leader(LONG).expect("a leader");
    // The hook socket sits beside each agent's admin socket.
    let admin_socket = c.agents[1].socket.clone();
    let name = admin_socket
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    let hook = admin_socket.with_file_name(format!("{name}.vm-ha"));
    assert!(hook.exists(), "no hook socket at {}", hook.display());

    let host = HostInfo {
        id: 4,
        name: "kvm4".into(),
        state: 3,
        prev_state: Some(2),
        vms: vec![],
        template: Default::default(),
    };
    let flags = Flags {
        mode: Mode::Migrate,
        force: false,
        pause: 5,
        fencing: true,
    };
    let (_, event) = oneha::vmha::run::open_case(0, &host, &flags, Duration::from_secs(180));
    let open = AdminRequest::VmHa(VmHaRequest::Open {
        event: event.clone(),
    });
    let r = hook_call(&hook, &open);
    assert!(r.ok, "{:?}", r.error);
    let id = r.result.and_then(|v| v.as_u64()).expect("a case id");
    // Every member has it, the witness included.
    for i in 0..3 {
        let seen = wait_for(LONG, || cases(&c, i).into_iter().find(|k| k.id == id));
        let k = seen.unwrap_or_else(|| panic!("node {i} does not show case {id}"));
        assert_eq!((k.host_name.as_str(), k.flags.pause), ("kvm4", 5));
        assert!(k.closed.is_none());
    }
    // A second ERROR transition of the same host follows the open case.
    let again = hook_call(&hook, &open);
    assert_eq!(again.result.and_then(|v| v.as_u64()), Some(id));
    assert_eq!(cases(&c, 2).len(), 1);
    // The hook socket takes nothing else.
    let r = hook_call(&hook, &AdminRequest::Disable);
    assert!(!r.ok && r.error.unwrap_or_default().contains("only the VM-HA hook"));
    let r = hook_call(
        &hook,
        &AdminRequest::VmHa(VmHaRequest::Ack {
            host: "kvm4".into(),
        }),
    );
    assert!(!r.ok, "acknowledging is for root, on the admin socket");
    // oneha status lists the open case.
    let s = c.status(0).expect("status");
    assert_eq!(s.vm_ha.len(), 1, "{:?}", s.vm_ha);
    // An operator acknowledges the host is off (admin socket, any node).
    let r = c
        .call(
            2,
            &AdminRequest::VmHa(VmHaRequest::Ack {
                host: "kvm4".into(),
            }),
        )
        .expect("call");
    assert!(r.ok, "{:?}", r.error);
    let acked = wait_for(LONG, || {
        cases(&c, 0)
            .into_iter()
            .find(|k| k.id == id && k.fence.done == Some(Fenced::Acked))
    });
    assert!(acked.is_some(), "the acknowledgement is journaled");
}
