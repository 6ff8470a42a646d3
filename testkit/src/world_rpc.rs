//! The XML-RPC methods of the fake oned's world (the session is checked before): parameters as
//! oned reads them, the world's state machine ([`world_ops`]), replies as oned writes them.
//!
//! Test-only methods (not oned's; names start with `testkit.`):
//! - `testkit.host.state(session, id, state)`: monitord reports `state` for host `id`
//!   (3 ERROR: the host goes to ERROR and its RUNNING VMs to UNKNOWN; 2 MONITORED: back).
//! - `testkit.host.probe(session, id, "ADDR:PORT" | "")`: sets or clears the host's probe.
//! - `testkit.vm.state(session, id, state, lcm_state)`: puts a VM in a state.
//! - `testkit.world.dump(session)`: the world as JSON (the state file's format).

use dxr::Value;

use super::fake_oned::{Out, failure_id, fault, response};
use super::world::{ActionCall, World};
use super::world_handle::{WorldHandle, now_ms};
use super::world_ops::{self, Refusal, code, no_object};
use super::world_xml::{self, VmBody};
use oneha::opennebula::xmlrpc::int_of;

/// The number of parameters (session included) `method` needs, when the world answers it.
pub fn arity(method: &str) -> Option<usize> {
    Some(match method {
        "one.hostpool.info"
        | "one.datastorepool.info"
        | "one.system.config"
        | "testkit.world.dump" => 1,
        "one.host.info" | "one.vm.info" | "one.datastore.info" | "one.vm.unlock" => 2,
        "one.host.status" | "one.vm.action" | "one.vm.recover" | "one.vm.lock"
        | "testkit.host.state" | "testkit.host.probe" => 3,
        "one.vm.migrate" | "testkit.vm.state" => 4,
        _ => return None,
    })
}

fn int(params: &[Value], i: usize) -> Result<i64, Vec<u8>> {
    params
        .get(i)
        .and_then(int_of)
        .ok_or_else(|| fault(-501, &format!("Parameter {i} must be an integer")))
}

fn string(params: &[Value], i: usize) -> Result<&str, Vec<u8>> {
    match params.get(i) {
        Some(Value::String(s)) => Ok(s.as_str()),
        _ => Err(fault(-501, &format!("Parameter {i} must be a string"))),
    }
}

fn boolean(params: &[Value], i: usize, default: bool) -> Result<bool, Vec<u8>> {
    match params.get(i) {
        None => Ok(default),
        Some(Value::Boolean(b)) => Ok(*b),
        Some(_) => Err(fault(-501, &format!("Parameter {i} must be a boolean"))),
    }
}

fn ok_xml(xml: &str) -> Vec<u8> {
    response(&[Out::Bool(true), Out::Str(xml), Out::I4(0)])
}

fn reply(method: &str, r: Result<i64, Refusal>) -> Vec<u8> {
    match r {
        Ok(id) => response(&[Out::Bool(true), Out::I4(id), Out::I4(0)]),
        Err(e) => failure_id(method, e.code, &e.msg, e.resp_id),
    }
}

/// The reply to `method` (arity already checked) with `params` (session first).
pub fn answer(w: &WorldHandle, method: &str, params: &[Value]) -> Vec<u8> {
    match dispatch(w, method, params) {
        Ok(bytes) | Err(bytes) => bytes,
    }
}

fn dispatch(w: &WorldHandle, method: &str, p: &[Value]) -> Result<Vec<u8>, Vec<u8>> {
    // The session was checked: it is oneadmin's (uid 0).
    let uid = 0;
    let now = now_ms();
    Ok(match method {
        "one.hostpool.info" => ok_xml(&w.read(world_xml::host_pool)),
        "one.datastorepool.info" => ok_xml(&w.read(world_xml::datastore_pool)),
        "one.system.config" => ok_xml(&world_xml::system_config()),
        "one.host.info" => info(w, method, p, "host", |world, id, out| {
            let h = world.host(id)?;
            world_xml::host_into(out, world, h);
            Some(())
        })?,
        "one.datastore.info" => info(w, method, p, "datastore", |world, id, out| {
            world_xml::datastore_into(out, world.datastore(id)?);
            Some(())
        })?,
        "one.vm.info" => info(w, method, p, "virtual machine", |world, id, out| {
            world_xml::vm_into(out, world.vm(id)?, VmBody::Full);
            Some(())
        })?,
        "one.host.status" => {
            let (id, status) = (int(p, 1)?, int(p, 2)?);
            reply(method, w.call(|x| world_ops::host_status(x, id, status)))
        }
        "one.vm.action" => {
            let act = string(p, 1)?.to_string();
            let id = int(p, 2)?;
            let r = logged(w, method, id, &act, now, |x| {
                world_ops::vm_action(x, &act, id, uid, now)
            });
            reply(method, r)
        }
        "one.vm.recover" => {
            let (id, op) = (int(p, 1)?, int(p, 2)?);
            let r = logged(w, method, id, &op.to_string(), now, |x| {
                world_ops::vm_recover(x, id, op, uid, now)
            });
            reply(method, r)
        }
        "one.vm.migrate" => {
            let (id, hid) = (int(p, 1)?, int(p, 2)?);
            let live = boolean(p, 3, false)?;
            boolean(p, 4, false)?;
            let ds = if p.len() > 5 { int(p, 5)? } else { -1 };
            let kind = if p.len() > 6 { int(p, 6)? } else { 0 };
            let r = logged(w, method, id, &hid.to_string(), now, |x| {
                world_ops::vm_migrate(x, id, hid, live, ds, kind, uid, now)
            });
            reply(method, r)
        }
        "one.vm.lock" => {
            let (id, level) = (int(p, 1)?, int(p, 2)?);
            boolean(p, 3, false)?;
            let secs = (now / 1000) as i64;
            reply(
                method,
                w.call(|x| world_ops::vm_lock(x, id, level, uid, secs)),
            )
        }
        "one.vm.unlock" => {
            let id = int(p, 1)?;
            reply(method, w.call(|x| world_ops::vm_unlock(x, id)))
        }
        "testkit.host.state" => {
            let (id, state) = (int(p, 1)?, int(p, 2)?);
            let secs = (now / 1000) as i64;
            reply(
                method,
                w.call(|x| {
                    x.host(id).ok_or_else(|| no_object("host", id))?;
                    world_ops::monitor_host_state(x, id, state, "forced by the test", secs);
                    Ok(id)
                }),
            )
        }
        "testkit.host.probe" => {
            let id = int(p, 1)?;
            let probe = string(p, 2)?.to_string();
            reply(
                method,
                w.call(|x| {
                    let h = x.host_mut(id).ok_or_else(|| no_object("host", id))?;
                    h.probe = (!probe.is_empty()).then_some(probe);
                    Ok(id)
                }),
            )
        }
        "testkit.vm.state" => {
            let (id, state, lcm) = (int(p, 1)?, int(p, 2)?, int(p, 3)?);
            reply(
                method,
                w.call(|x| {
                    let vm = x
                        .vm_mut(id)
                        .ok_or_else(|| no_object("virtual machine", id))?;
                    vm.state = state;
                    vm.lcm_state = Some(lcm);
                    Ok(id)
                }),
            )
        }
        "testkit.world.dump" => {
            let json = serde_json::to_string_pretty(&w.snapshot()).unwrap_or_default();
            ok_xml(&json)
        }
        other => refusal(
            other,
            Refusal {
                code: code::XML_RPC_API,
                msg: "not a world method".into(),
                resp_id: -1,
            },
        ),
    })
}

/// Runs a VM action call `op` and appends it, accepted or refused, to the world's action
/// log (saved with the world either way).
fn logged(
    w: &WorldHandle,
    method: &str,
    vm: i64,
    what: &str,
    now: u64,
    op: impl FnOnce(&mut World) -> Result<i64, Refusal>,
) -> Result<i64, Refusal> {
    w.change(
        |x| {
            let r = op(x);
            x.actions.push(ActionCall {
                method: method.to_string(),
                vm,
                what: what.to_string(),
                ok: r.is_ok(),
                at_ms: now,
            });
            r
        },
        |_, _| true,
    )
}

/// How long the answer to `method` waits after the change (`settings.action_delay_ms` for
/// VM actions, else nothing).
pub fn answer_delay(w: &WorldHandle, method: &str) -> std::time::Duration {
    match method {
        "one.vm.action" | "one.vm.recover" | "one.vm.migrate" => {
            std::time::Duration::from_millis(w.read(|x| x.settings.action_delay_ms))
        }
        _ => std::time::Duration::ZERO,
    }
}

/// An `info` call `(session, id[, decrypt])`: the object `render` writes, or NO_EXISTS.
fn info(
    w: &WorldHandle,
    method: &str,
    p: &[Value],
    what: &str,
    render: impl FnOnce(&super::world::World, i64, &mut String) -> Option<()>,
) -> Result<Vec<u8>, Vec<u8>> {
    let id = int(p, 1)?;
    boolean(p, 2, false)?;
    let mut out = String::new();
    Ok(match w.read(|world| render(world, id, &mut out)) {
        Some(()) => ok_xml(&out),
        None => refusal(method, no_object(what, id)),
    })
}

fn refusal(method: &str, e: Refusal) -> Vec<u8> {
    failure_id(method, e.code, &e.msg, e.resp_id)
}

/// The VM_POOL page of the world (the filter, state and paging rules of the static pool).
pub fn pool_page(
    w: &WorldHandle,
    desc: bool,
    (start, end, state): (i64, i64, i64),
    extended: bool,
) -> String {
    w.read(|world| {
        let index: Vec<(i64, i64)> = world.vms.iter().map(|v| (v.id, v.state)).collect();
        let positions = super::fake_oned::select_page(&index, desc, start, end, state);
        let body = if extended {
            VmBody::Extended
        } else {
            VmBody::Short
        };
        let mut out = String::from("<VM_POOL>");
        for i in positions {
            if let Some(vm) = world.vms.get(i) {
                world_xml::vm_into(&mut out, vm, body);
            }
        }
        out.push_str("</VM_POOL>");
        out
    })
}
