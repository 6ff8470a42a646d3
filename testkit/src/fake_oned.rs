//! A fake oned for tests: an HTTP/1.1 XML-RPC server on loopback answering
//! `one.vmpool.infoextended`, `one.vmpool.info` and `one.system.version` as oned does.
//!
//! OpenNebula cannot be installed here, so this speaks exactly what oned speaks: the reply
//! arrays (3 elements on success, 5 with an `<i8>` on error), the error codes, the filter,
//! state filter and paging rules of `RequestManagerPoolInfoFilter` (`end < -1`: `LIMIT start,
//! -end` over the filtered pool, ordered by id, descending as oned's default `API_LIST_ORDER`),
//! and XML-RPC faults for unknown methods or missing parameters. Faults can be injected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dxr::{MethodCall, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::vm_xml::{self, FakeVm};
use super::world_handle::WorldHandle;
use oneha::opennebula::pool::VmRecord;
use oneha::opennebula::xmlrpc::int_of;

/// Which injected fault, if any, answers a call.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every call is refused with AUTHENTICATION.
    pub auth_error: bool,
    /// The first N calls answer INTERNAL "... election mode" (oned's Raft electing).
    pub election_calls: u64,
    /// VM_POOL bodies are cut in the middle (malformed XML).
    pub malformed_pool: bool,
    /// The XML-RPC envelope is not XML.
    pub malformed_reply: bool,
    /// A VM in the pool has `<LCM_STATE>abc</LCM_STATE>`.
    pub wrong_type_pool: bool,
    /// Pool replies carry the pool as an `<i4>` instead of a string.
    pub wrong_type_reply: bool,
    /// Every reply is delayed this long.
    pub delay: Duration,
    /// Connections are closed without an answer.
    pub close: bool,
    /// Every pool request gets the first page, whatever offset it asks (a broken proxy).
    pub ignore_offset: bool,
    /// A refused session is repeated in the error message (as some proxies do).
    pub echo_session: bool,
}

/// Order of list replies (oned's `API_LIST_ORDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Highest id first (oned's default).
    #[default]
    Desc,
    /// Lowest id first.
    Asc,
}

/// Where the VMs come from.
#[derive(Debug, Clone)]
pub enum Vms {
    /// These VMs (fixture files, or hand-made records).
    List(Vec<FakeVm>),
    /// VMs 0..n from [`vm_xml::generated`], with `overrides` (id -> VM) replacing some.
    Generated {
        /// How many.
        n: i64,
        /// Replacements, e.g. stuck VMs.
        overrides: BTreeMap<i64, VmRecord>,
    },
    /// A stateful world (hosts, datastores, VMs, monitord, scheduler, hooks): see
    /// [`super::world`].
    World(WorldHandle),
}

/// One call the fake received (session and all), for tests to check paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLog {
    /// Method name.
    pub method: String,
    /// Integer parameters after the session.
    pub ints: Vec<i64>,
}

/// Fake oned settings.
#[derive(Debug, Clone)]
pub struct FakeOned {
    /// The only accepted session.
    pub session: String,
    /// List order.
    pub order: Order,
    /// Injected faults.
    pub faults: Faults,
    /// The pool.
    pub vms: Vms,
    /// "Now" used to generate timestamps.
    pub now: i64,
}

/// A running fake: its address and what it was asked.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Calls so far.
    pub calls: Arc<Mutex<Vec<CallLog>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://ADDR/RPC2`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/RPC2", self.addr)
    }
    /// A copy of the calls so far.
    pub fn calls(&self) -> Vec<CallLog> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    cfg: FakeOned,
    /// List mode: the VMs by ascending id.
    sorted: Vec<FakeVm>,
    /// Both modes: (id, STATE) by ascending id, for filtering without rendering.
    index: Vec<(i64, i64)>,
    count: AtomicU64,
    calls: Arc<Mutex<Vec<CallLog>>>,
}

impl FakeOned {
    /// Serves on `listener` until the returned handle is dropped.
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut sorted = match &self.vms {
            Vms::List(v) => v.clone(),
            Vms::Generated { .. } | Vms::World(_) => Vec::new(),
        };
        sorted.sort_by_key(|v| v.rec.id);
        let index = match &self.vms {
            Vms::List(_) => sorted.iter().map(|v| (v.rec.id, v.rec.state)).collect(),
            Vms::Generated { n, overrides } => (0..*n)
                .map(|id| {
                    let state = overrides
                        .get(&id)
                        .map_or_else(|| vm_xml::generated(id, 0).state, |r| r.state);
                    (id, state)
                })
                .collect(),
            Vms::World(_) => Vec::new(),
        };
        let world = match &self.vms {
            Vms::World(w) => Some(w.clone()),
            _ => None,
        };
        let shared = Arc::new(Shared {
            cfg: self,
            sorted,
            index,
            count: AtomicU64::new(0),
            calls: calls.clone(),
        });
        let task = tokio::spawn(async move {
            // The world's monitord and scheduler live as long as the server.
            let _background = world.map(super::monitord::start);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, &shared).await {
                        tracing::debug!("fake oned connection: {e}");
                    }
                });
            }
        });
        Ok(Running { addr, calls, task })
    }
}

async fn serve_connection(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some((head_len, body_len, close)) = read_head(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        while buf.len() < head_len + body_len {
            let mut chunk = [0u8; 16384];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_len..head_len + body_len]).into_owned();
        buf.drain(..head_len + body_len);
        let faults = &shared.cfg.faults;
        if faults.close {
            return Ok(());
        }
        if !faults.delay.is_zero() {
            tokio::time::sleep(faults.delay).await;
        }
        let reply = if faults.malformed_reply {
            b"<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>".to_vec()
        } else {
            let reply = answer(&body, shared);
            let slow = slow_answer(&body, shared);
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            reply
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\nServer: fake-oned (oneha testkit)\r\n{}\r\n",
            reply.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&reply).await?;
        if close {
            return Ok(());
        }
    }
}

/// Reads until the end of the request head; returns (head length, Content-Length, close).
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(usize, usize, bool)>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let mut len = 0usize;
            let mut close = false;
            for line in head.lines().skip(1) {
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "connection" => close = v.trim() == "close",
                        _ => {}
                    }
                }
            }
            return Ok(Some((end + 4, len, close)));
        }
        if buf.len() > 65_536 {
            return Ok(None);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A value of a reply, written the way xmlrpc-c writes it.
pub(crate) enum Out<'a> {
    Bool(bool),
    Str(&'a str),
    I4(i64),
    I8(i64),
}

/// The reply's bytes: a page is megabytes of escaped text, built as bytes (no re-checks).
pub(crate) fn response(values: &[Out<'_>]) -> Vec<u8> {
    let mut s = Vec::with_capacity(
        256 + values
            .iter()
            .map(|v| match v {
                // VM_POOL grows by about half when escaped (`<` is `&lt;`).
                Out::Str(t) => t.len() + t.len() / 2 + 64,
                _ => 16,
            })
            .sum::<usize>(),
    );
    s.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n<param><value><array><data>\r\n");
    for v in values {
        match v {
            Out::Bool(b) => s.extend_from_slice(if *b {
                b"<value><boolean>1</boolean></value>\r\n"
            } else {
                b"<value><boolean>0</boolean></value>\r\n"
            }),
            Out::Str(t) => {
                s.extend_from_slice(b"<value><string>");
                vm_xml::escape_bytes_into(&mut s, t);
                s.extend_from_slice(b"</string></value>\r\n");
            }
            Out::I4(i) => {
                s.extend_from_slice(format!("<value><i4>{i}</i4></value>\r\n").as_bytes())
            }
            Out::I8(i) => {
                s.extend_from_slice(format!("<value><i8>{i}</i8></value>\r\n").as_bytes())
            }
        }
    }
    s.extend_from_slice(b"</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n");
    s
}

fn failure(method: &str, code: i64, msg: &str) -> Vec<u8> {
    failure_id(method, code, msg, -1)
}

/// oned's error reply: `[false, "[method] msg", code, resp_id, <i8>0]`.
pub(crate) fn failure_id(method: &str, code: i64, msg: &str, resp_id: i64) -> Vec<u8> {
    let m = format!("[{method}] {msg}");
    response(&[
        Out::Bool(false),
        Out::Str(&m),
        Out::I4(code),
        Out::I4(resp_id),
        Out::I8(0),
    ])
}

/// An XML-RPC fault, as xmlrpc-c sends for unknown methods and bad parameters.
pub(crate) fn fault(code: i32, msg: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<fault>\r\n<value><struct>\r\n\
         <member><name>faultCode</name>\r\n<value><i4>{code}</i4></value></member>\r\n\
         <member><name>faultString</name>\r\n<value><string>{msg}</string></value></member>\r\n\
         </struct></value>\r\n</fault>\r\n</methodResponse>\r\n"
    )
    .into_bytes()
}

/// How long the world wants the answer to this call held back (see
/// `Settings::action_delay_ms`); nothing for static pools.
fn slow_answer(body: &str, shared: &Shared) -> Duration {
    let Vms::World(w) = &shared.cfg.vms else {
        return Duration::ZERO;
    };
    if w.read(|x| x.settings.action_delay_ms) == 0 {
        return Duration::ZERO;
    }
    match MethodCall::from_xml(body) {
        Ok(call) => super::world_rpc::answer_delay(w, &call.name),
        Err(_) => Duration::ZERO,
    }
}

fn answer(body: &str, shared: &Shared) -> Vec<u8> {
    let call = match MethodCall::from_xml(body) {
        Ok(c) => c,
        Err(_) => return fault(-503, "Call XML not a proper XML-RPC call"),
    };
    let method = call.name.to_string();
    let ints: Vec<i64> = call.params.iter().skip(1).filter_map(int_of).collect();
    if let Ok(mut calls) = shared.calls.lock() {
        calls.push(CallLog {
            method: method.clone(),
            ints: ints.clone(),
        });
    }
    let n = shared.count.fetch_add(1, Ordering::SeqCst);
    let faults = &shared.cfg.faults;
    let needed = match method.as_str() {
        "one.system.version" => 1,
        "one.vmpool.info" | "one.vmpool.infoextended" => 5,
        m => match (&shared.cfg.vms, super::world_rpc::arity(m)) {
            (Vms::World(_), Some(n)) => n,
            _ => return fault(-506, &format!("Unknown method name \"{method}\"")),
        },
    };
    if call.params.len() < needed {
        return fault(-501, "Not enough parameters");
    }
    let session = match call.params.first() {
        Some(Value::String(s)) => s.as_str(),
        _ => return fault(-501, "Parameter 0 is not a string"),
    };
    if faults.auth_error || session != shared.cfg.session {
        let echo = format!("User couldn't be authenticated, aborting call: {session}");
        return failure(
            &method,
            0x100,
            if faults.echo_session {
                &echo
            } else {
                "User couldn't be authenticated, aborting call."
            },
        );
    }
    if n < faults.election_calls {
        return failure(
            &method,
            0x2000,
            "Cannot process request, oned cluster in election mode",
        );
    }
    if method == "one.system.version" {
        return response(&[Out::Bool(true), Out::Str("7.0.0"), Out::I4(0)]);
    }
    if let Vms::World(w) = &shared.cfg.vms
        && !method.starts_with("one.vmpool.")
    {
        return super::world_rpc::answer(w, &method, &call.params);
    }
    if ints.len() != 4
        || call
            .params
            .iter()
            .skip(1)
            .take(4)
            .any(|v| int_of(v).is_none())
    {
        return fault(-501, "Parameters 1-4 must be integers");
    }
    let (filter, start, end, state) = (ints[0], ints[1], ints[2], ints[3]);
    let start = if faults.ignore_offset { 0 } else { start };
    if filter < -4 {
        return failure(&method, 0x1000, "Incorrect filter_flag");
    }
    if !(-2..=11).contains(&state) {
        return failure(&method, 0x1000, "Incorrect filter_flag, state");
    }
    let extended = method == "one.vmpool.infoextended";
    let mut xml = pool_page(shared, start, end, state, extended);
    if faults.malformed_pool {
        let cut = xml.len() / 2;
        let cut = (0..=cut)
            .rev()
            .find(|i| xml.is_char_boundary(*i))
            .unwrap_or(0);
        xml.truncate(cut);
    }
    if faults.wrong_type_reply {
        return response(&[Out::Bool(true), Out::I4(42), Out::I4(0)]);
    }
    response(&[Out::Bool(true), Out::Str(&xml), Out::I4(0)])
}

fn state_matches(vm_state: i64, state: i64) -> bool {
    match state {
        -2 => true,
        -1 => vm_state != 6,
        s => vm_state == s,
    }
}

fn id_matches(id: i64, start: i64, end: i64) -> bool {
    // PoolSQL::oid_filter: only when end >= -1 and start != -1.
    if end >= -1 && start != -1 {
        id >= start && (end == -1 || id <= end)
    } else {
        true
    }
}

fn pool_page(shared: &Shared, start: i64, end: i64, state: i64, extended: bool) -> String {
    if let Vms::World(w) = &shared.cfg.vms {
        let desc = shared.cfg.order == Order::Desc;
        return super::world_rpc::pool_page(w, desc, (start, end, state), extended);
    }
    let wrong_type = shared.cfg.faults.wrong_type_pool;
    let desc = shared.cfg.order == Order::Desc;
    let positions = select_page(&shared.index, desc, start, end, state);
    // About 4 KB per extended VM body; sized once rather than grown by copies.
    let per_vm = if extended { 4200 } else { 1200 };
    let mut out = String::with_capacity(32 + positions.len() * per_vm);
    out.push_str("<VM_POOL>");
    let mut emit = |rec: &VmRecord, raw: Option<&str>| {
        let before = out.len();
        match (extended, raw) {
            (true, Some(r)) => out.push_str(r),
            (true, None) => vm_xml::extended_into(&mut out, rec),
            (false, _) => vm_xml::short_into(&mut out, rec),
        }
        if wrong_type && let Some(p) = out[before..].find("<LCM_STATE>") {
            let at = before + p + "<LCM_STATE>".len();
            out.insert_str(at, "abc");
        }
    };
    for i in positions {
        match &shared.cfg.vms {
            Vms::List(_) => {
                if let Some(v) = shared.sorted.get(i) {
                    emit(&v.rec, v.raw.as_deref());
                }
            }
            Vms::World(_) => {}
            Vms::Generated { overrides, .. } => {
                let id = shared.index.get(i).map_or(0, |e| e.0);
                let rec = overrides
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| vm_xml::generated(id, shared.cfg.now));
                emit(&rec, None);
            }
        }
    }
    out.push_str("</VM_POOL>");
    out
}

/// Positions in `index` ((id, STATE) by ascending id) of the VMs on the page that oned's
/// `RequestManagerPoolInfoFilter` returns for (start, end, state), highest id first if `desc`.
pub(crate) fn select_page(
    index: &[(i64, i64)],
    desc: bool,
    start: i64,
    end: i64,
    state: i64,
) -> Vec<usize> {
    let (offset, limit) = if end < -1 {
        (start.max(0) as usize, end.unsigned_abs() as usize)
    } else {
        (0, usize::MAX)
    };
    let keep =
        |e: &(usize, &(i64, i64))| state_matches(e.1.1, state) && id_matches(e.1.0, start, end);
    let all = index.iter().enumerate();
    if desc {
        all.rev()
            .filter(keep)
            .skip(offset)
            .take(limit)
            .map(|(i, _)| i)
            .collect()
    } else {
        all.filter(keep)
            .skip(offset)
            .take(limit)
            .map(|(i, _)| i)
            .collect()
    }
}
