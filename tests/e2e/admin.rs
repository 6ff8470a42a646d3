//! The agent's admin API straight from the test process: the node's `/run` is reachable from
//! the host as `/proc/PID1/root/run`, so a status costs one unix-socket round trip instead of
//! an `nsenter` and a process (cheap enough to poll every few milliseconds).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use oneha::admin::{AdminRequest, AdminResponse};
use oneha::status::StatusReport;

use crate::harness::Node;

/// Time allowed for one request.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `req` to the agent on `node`; `None` if the node is off, the agent does not answer
/// or the answer is not understood.
pub fn call(node: &Node, req: &AdminRequest) -> Option<AdminResponse> {
    let pid1 = node.pid1()?;
    let path = format!("/proc/{pid1}/root/run/oneha/admin.sock");
    let mut stream = UnixStream::connect(path).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    let mut body = serde_json::to_vec(req).ok()?;
    body.push(b'\n');
    stream.write_all(&body).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    serde_json::from_str(line.trim()).ok()
}

/// The status report of the agent on `node`.
pub fn status(node: &Node) -> Option<StatusReport> {
    let resp = call(node, &AdminRequest::Status)?;
    if !resp.ok {
        return None;
    }
    serde_json::from_value(resp.result?).ok()
}
