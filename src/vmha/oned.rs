//! The XML-RPC calls of the hook, with every answer checked: `one.host.info`,
//! `one.hostpool.info`, `one.vm.info`, `one.datastorepool.info`, `one.vm.action("resched")`,
//! `one.vm.recover`.

use std::collections::BTreeMap;

use dxr::Value;

use super::case::{VmOp, VmOutcome};
use super::host::{self, HostInfo, HostSummary};
use super::vm::{self, VmFacts};
use crate::opennebula::xmlrpc::{Client, kind};
use crate::opennebula::{ErrorCode, OnedError};

fn protocol(client: &Client, method: &str, detail: String) -> OnedError {
    OnedError::Protocol {
        endpoint: client.endpoint().url.clone(),
        method: method.to_string(),
        detail,
    }
}

async fn call_xml(client: &Client, method: &str, params: &[Value]) -> Result<String, OnedError> {
    match client.call(method, params).await? {
        Value::String(s) => Ok(s),
        other => Err(protocol(
            client,
            method,
            format!(
                "expected an XML document as a string, found {}",
                kind(&other)
            ),
        )),
    }
}

fn parsed<T>(client: &Client, method: &str, r: Result<T, String>) -> Result<T, OnedError> {
    r.map_err(|e| protocol(client, method, e))
}

/// `one.host.info(id)`.
pub async fn host_info(client: &Client, id: i64) -> Result<HostInfo, OnedError> {
    let m = "one.host.info";
    let xml = call_xml(client, m, &[int(id), Value::Boolean(false)]).await?;
    parsed(client, m, HostInfo::parse(&xml))
}

/// `one.hostpool.info()`.
pub async fn host_pool(client: &Client) -> Result<Vec<HostSummary>, OnedError> {
    let m = "one.hostpool.info";
    let xml = call_xml(client, m, &[]).await?;
    parsed(client, m, host::parse_pool(&xml))
}

/// `one.vm.info(id)`: `None` when the VM does not exist (NO_EXISTS).
pub async fn vm_info(client: &Client, id: i64) -> Result<Option<VmFacts>, OnedError> {
    let m = "one.vm.info";
    match call_xml(client, m, &[int(id), Value::Boolean(false)]).await {
        Ok(xml) => parsed(client, m, VmFacts::parse(&xml)).map(Some),
        Err(OnedError::Api {
            code: ErrorCode::NoExists,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `one.datastorepool.info()`: system datastores by id, true when shared.
pub async fn datastores(client: &Client) -> Result<BTreeMap<i64, bool>, OnedError> {
    let m = "one.datastorepool.info";
    let xml = call_xml(client, m, &[]).await?;
    parsed(client, m, vm::parse_datastores(&xml))
}

fn int(v: i64) -> Value {
    match i32::try_from(v) {
        Ok(i) => Value::Integer(i),
        Err(_) => Value::Long(v),
    }
}

/// Sends `op` for VM `id`. `Ok(outcome)` when oned answered (accepted or refused);
/// `Err` when the answer is unknown (no connection, timeout): the action may or may not
/// have been applied, so the VM is read again before anything else is sent.
pub async fn act(client: &Client, id: i64, op: VmOp) -> Result<VmOutcome, OnedError> {
    let (method, params) = match op {
        VmOp::Resched => (
            "one.vm.action",
            vec![Value::String("resched".into()), int(id)],
        ),
        VmOp::Recreate => ("one.vm.recover", vec![int(id), Value::Integer(4)]),
        VmOp::Delete => ("one.vm.recover", vec![int(id), Value::Integer(3)]),
    };
    match client.call(method, &params).await {
        Ok(_) => Ok(VmOutcome::Done {
            detail: format!("{method} accepted"),
        }),
        Err(e) => classify(e),
    }
}

/// Turns oned's answer to an action into an outcome; unknown answers stay errors.
pub fn classify(e: OnedError) -> Result<VmOutcome, OnedError> {
    let OnedError::Api { code, message, .. } = &e else {
        return match e {
            OnedError::Fault { .. } | OnedError::Protocol { .. } => Ok(VmOutcome::Failed {
                detail: super::sanitize(&e.to_string(), 300),
            }),
            other => Err(other),
        };
    };
    let detail = super::sanitize(message, 300);
    let locked = message.to_ascii_lowercase().contains("lock");
    Ok(match code {
        ErrorCode::Locked => VmOutcome::Locked { detail },
        ErrorCode::Authorization if locked => VmOutcome::Locked { detail },
        ErrorCode::Action => VmOutcome::WrongState { detail },
        ErrorCode::NoExists => VmOutcome::Gone,
        ErrorCode::Internal if e.is_transient() => return Err(e),
        _ => VmOutcome::Failed {
            detail: super::sanitize(&e.to_string(), 300),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: ErrorCode, msg: &str) -> OnedError {
        OnedError::api("one.vm.recover", code, msg.into())
    }

    #[test]
    fn answers_become_outcomes() {
        let locked = classify(api(ErrorCode::Locked, "[one.vm.recover] locked")).unwrap();
        assert!(matches!(locked, VmOutcome::Locked { .. }));
        let auth = classify(api(ErrorCode::Authorization, "VM is locked")).unwrap();
        assert!(matches!(auth, VmOutcome::Locked { .. }));
        let state = classify(api(ErrorCode::Action, "Wrong state")).unwrap();
        assert!(matches!(state, VmOutcome::WrongState { .. }));
        assert_eq!(
            classify(api(ErrorCode::NoExists, "x")).unwrap(),
            VmOutcome::Gone
        );
        let denied = classify(api(ErrorCode::Authorization, "not authorized")).unwrap();
        assert!(matches!(denied, VmOutcome::Failed { .. }));
        // oned electing: unknown, retried via the intent.
        assert!(classify(api(ErrorCode::Internal, "oned is in election mode")).is_err());
        let conn = OnedError::Connect {
            endpoint: "e".into(),
            detail: "refused".into(),
            refused: true,
        };
        assert!(classify(conn).is_err());
    }

    #[test]
    fn control_characters_from_oned_are_escaped() {
        let o = classify(api(ErrorCode::Action, "bad\u{1b}[2J state")).unwrap();
        let VmOutcome::WrongState { detail } = o else {
            panic!()
        };
        assert!(!detail.contains('\u{1b}'), "{detail}");
    }
}
