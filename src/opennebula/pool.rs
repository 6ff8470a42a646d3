//! Paging through `one.vmpool.infoextended` and parsing VM_POOL as a stream.
//!
//! Per VM only what the report needs is kept (ID, NAME, UNAME, STATE, LCM_STATE, DEPLOY_ID,
//! STIME and the last HISTORY record); a VM the caller does not keep is dropped as soon as its
//! `</VM>` is read, so memory is bounded by the kept VMs plus one page.
//!
//! Paging follows oned (`RequestManagerPoolInfoFilter::dump`): `end < -1` means
//! `LIMIT start, -end` over the filtered, ordered pool. State filter `-1` is "any except DONE",
//! which includes CLONING (10) and CLONING_FAILURE (11).

use std::collections::HashSet;

use dxr::Value;
use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

use super::error::OnedError;
use super::xmlrpc::{Cancel, Client, Retry, kind};

/// The method used for the report (full body: history timestamps).
pub const INFOEXTENDED: &str = "one.vmpool.infoextended";
/// `filter_flag` for all VMs of all users.
pub const FILTER_ALL: i32 = -2;
/// `state` filter for any state except DONE.
pub const STATE_NOT_DONE: i32 = -1;

/// The last history record of a VM: where it is and which operation it was doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Sequence number of the record.
    pub seq: i64,
    /// Host name.
    pub hostname: String,
    /// Host id.
    pub hid: i64,
    /// System datastore id.
    pub ds_id: i64,
    /// The operation (`HISTORY_ACTION` number, e.g. 21 disk attach, 22 disk detach).
    pub action: i64,
    /// Record start.
    pub stime: i64,
    /// Record end.
    pub etime: i64,
    /// Prolog start / end.
    pub pstime: i64,
    /// Prolog end.
    pub petime: i64,
    /// Running start.
    pub rstime: i64,
    /// Running end.
    pub retime: i64,
    /// Epilog start.
    pub estime: i64,
    /// Epilog end.
    pub eetime: i64,
}

/// What the report keeps of one VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmRecord {
    /// VM id.
    pub id: i64,
    /// VM name.
    pub name: String,
    /// Owner (UNAME).
    pub owner: String,
    /// STATE number.
    pub state: i64,
    /// LCM_STATE number.
    pub lcm_state: i64,
    /// Hypervisor domain name (empty when never deployed).
    pub deploy_id: String,
    /// Creation time.
    pub stime: i64,
    /// Last history record, when the VM was ever scheduled.
    pub history: Option<History>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VmField {
    Id,
    Name,
    Uname,
    State,
    Lcm,
    DeployId,
    Stime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HistField {
    Seq,
    Hostname,
    Hid,
    DsId,
    Action,
    Stime,
    Etime,
    Pstime,
    Petime,
    Rstime,
    Retime,
    Estime,
    Eetime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Vm(VmField),
    Hist(HistField),
}

fn vm_field(name: &str) -> Option<VmField> {
    Some(match name {
        "ID" => VmField::Id,
        "NAME" => VmField::Name,
        "UNAME" => VmField::Uname,
        "STATE" => VmField::State,
        "LCM_STATE" => VmField::Lcm,
        "DEPLOY_ID" => VmField::DeployId,
        "STIME" => VmField::Stime,
        _ => return None,
    })
}

fn hist_field(name: &str) -> Option<HistField> {
    Some(match name {
        "SEQ" => HistField::Seq,
        "HOSTNAME" => HistField::Hostname,
        "HID" => HistField::Hid,
        "DS_ID" => HistField::DsId,
        "ACTION" => HistField::Action,
        "STIME" => HistField::Stime,
        "ETIME" => HistField::Etime,
        "PSTIME" => HistField::Pstime,
        "PETIME" => HistField::Petime,
        "RSTIME" => HistField::Rstime,
        "RETIME" => HistField::Retime,
        "ESTIME" => HistField::Estime,
        "EETIME" => HistField::Eetime,
        _ => return None,
    })
}

/// One VM being read.
#[derive(Default)]
struct Partial {
    rec: VmRecord,
    seen_id: bool,
    seen_state: bool,
    seen_lcm: bool,
    hist: Option<History>,
}

/// Where the parser is, for error messages.
struct Pos {
    index: usize,
    id: Option<i64>,
    last_id: Option<i64>,
}

impl Pos {
    fn vm(&self) -> String {
        match (self.id, self.last_id) {
            (Some(id), _) => format!("VM {id}"),
            (None, Some(prev)) => format!("the VM after VM {prev} (#{} in the page)", self.index),
            (None, None) => format!("VM #{} in the page", self.index),
        }
    }
}

fn pool_err(context: String, detail: String) -> OnedError {
    OnedError::Pool { context, detail }
}

fn resolve_ref(r: &BytesRef<'_>) -> Result<char, String> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c);
    }
    match &**r {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(format!("unknown entity `&{other};`")),
    }
}

/// Children of VM that hold nothing the report needs; skipped whole.
const SKIPPED: [&str; 8] = [
    "TEMPLATE",
    "USER_TEMPLATE",
    "MONITORING",
    "PERMISSIONS",
    "SCHED_ACTIONS",
    "SNAPSHOTS",
    "BACKUPS",
    "LOCK",
];

/// Levels whose element names are kept (VM_POOL, VM, its children, HISTORY, its children).
const NAMED_LEVELS: usize = 5;

/// Parses one VM_POOL document, calling `on_vm` for each complete VM; returns the number of
/// VMs read. Unknown elements and any nesting inside TEMPLATE, MONITORING, USER_TEMPLATE...
/// are skipped; CDATA and character/entity references are decoded.
pub fn parse_pool(xml: &str, on_vm: &mut dyn FnMut(VmRecord)) -> Result<usize, OnedError> {
    let mut reader = Reader::from_str(xml);
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut in_vm = false;
    let mut in_records = false;
    let mut in_history = false;
    let mut field: Option<(Field, usize)> = None;
    let mut text = String::new();
    let mut vm = Partial::default();
    let mut pos = Pos {
        index: 0,
        id: None,
        last_id: None,
    };
    let mut stack: Vec<String> = Vec::new();
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            pool_err(
                format!("{} (byte {offset} of the page)", pos.vm()),
                format!("malformed XML: {e}"),
            )
        })?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.name();
                let name = name.as_ref();
                if depth == 0 {
                    if root_seen || name != "VM_POOL" {
                        return Err(pool_err(
                            "the document root".into(),
                            format!("expected <VM_POOL>, found <{name}>"),
                        ));
                    }
                    root_seen = true;
                } else if depth == 1 && name == "VM" {
                    in_vm = true;
                    pos.index += 1;
                    pos.id = None;
                    vm = Partial::default();
                } else if in_vm && depth == 2 {
                    if !empty && SKIPPED.contains(&name) {
                        // Nothing in here is needed: let quick-xml run through it.
                        reader.read_to_end(e.name()).map_err(|err| {
                            pool_err(
                                format!("{} element {name}", pos.vm()),
                                format!("malformed XML: {err}"),
                            )
                        })?;
                        continue;
                    }
                    if name == "HISTORY_RECORDS" {
                        in_records = !empty;
                    } else if let Some(f) = vm_field(name) {
                        field = Some((Field::Vm(f), depth));
                    }
                } else if in_records && depth == 3 && name == "HISTORY" {
                    in_history = !empty;
                    vm.hist = Some(History::default());
                } else if in_history
                    && depth == 4
                    && let Some(f) = hist_field(name)
                {
                    field = Some((Field::Hist(f), depth));
                }
                if empty {
                    if let Some((f, d)) = field
                        && d == depth
                    {
                        store(&mut vm, f, "", &mut pos)?;
                        field = None;
                    }
                    if depth == 1 && name == "VM" {
                        finish_vm(&mut vm, &mut pos, on_vm)?;
                        in_vm = false;
                    }
                } else {
                    if depth < NAMED_LEVELS {
                        stack.push(name.to_string());
                    }
                    depth += 1;
                    text.clear();
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                let name = if depth < NAMED_LEVELS {
                    stack.pop().unwrap_or_default()
                } else {
                    String::new()
                };
                if let Some((f, d)) = field
                    && d == depth
                {
                    store(&mut vm, f, &text, &mut pos)?;
                    field = None;
                    text.clear();
                }
                match (depth, name.as_str()) {
                    (1, "VM") if in_vm => {
                        finish_vm(&mut vm, &mut pos, on_vm)?;
                        in_vm = false;
                    }
                    (2, "HISTORY_RECORDS") => in_records = false,
                    (3, "HISTORY") if in_history => {
                        in_history = false;
                        let h = vm.hist.take().unwrap_or_default();
                        let newer = vm.rec.history.as_ref().is_none_or(|old| h.seq >= old.seq);
                        if newer {
                            vm.rec.history = Some(h);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) if field.is_some() => text.push_str(&t.xml10_content()),
            Event::CData(t) if field.is_some() => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if field.is_some() => {
                let c = resolve_ref(&r).map_err(|e| {
                    pool_err(format!("{} (byte {offset} of the page)", pos.vm()), e)
                })?;
                text.push(c);
            }
            Event::Eof => {
                if !root_seen {
                    return Err(pool_err(
                        "the document".into(),
                        "no <VM_POOL> element: the reply is empty or not a VM pool".into(),
                    ));
                }
                if depth != 0 {
                    return Err(pool_err(
                        pos.vm(),
                        format!(
                            "the document ends inside <{}>: the reply was cut short",
                            stack.join("><")
                        ),
                    ));
                }
                return Ok(pos.index);
            }
            _ => {}
        }
    }
}

fn int(value: &str, element: &str, pos: &Pos) -> Result<i64, OnedError> {
    let v = value.trim();
    v.parse::<i64>().map_err(|_| {
        pool_err(
            format!("{} element {element}", pos.vm()),
            format!("expected an integer, found `{}`", truncate(v, 40)),
        )
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn store(vm: &mut Partial, f: Field, value: &str, pos: &mut Pos) -> Result<(), OnedError> {
    match f {
        Field::Vm(f) => {
            let r = &mut vm.rec;
            match f {
                VmField::Id => {
                    r.id = int(value, "ID", pos)?;
                    vm.seen_id = true;
                    // Later messages about this VM name it by id.
                    pos.id = Some(r.id);
                }
                VmField::Name => r.name = value.to_string(),
                VmField::Uname => r.owner = value.to_string(),
                VmField::State => {
                    r.state = int(value, "STATE", pos)?;
                    vm.seen_state = true;
                }
                VmField::Lcm => {
                    r.lcm_state = int(value, "LCM_STATE", pos)?;
                    vm.seen_lcm = true;
                }
                VmField::DeployId => r.deploy_id = value.trim().to_string(),
                VmField::Stime => r.stime = int(value, "STIME", pos)?,
            }
        }
        Field::Hist(f) => {
            let Some(h) = vm.hist.as_mut() else {
                return Ok(());
            };
            let pos = &*pos;
            let n = |el: &str| int(value, &format!("HISTORY/{el}"), pos);
            match f {
                HistField::Seq => h.seq = n("SEQ")?,
                HistField::Hostname => h.hostname = value.trim().to_string(),
                HistField::Hid => h.hid = n("HID")?,
                HistField::DsId => h.ds_id = n("DS_ID")?,
                HistField::Action => h.action = n("ACTION")?,
                HistField::Stime => h.stime = n("STIME")?,
                HistField::Etime => h.etime = n("ETIME")?,
                HistField::Pstime => h.pstime = n("PSTIME")?,
                HistField::Petime => h.petime = n("PETIME")?,
                HistField::Rstime => h.rstime = n("RSTIME")?,
                HistField::Retime => h.retime = n("RETIME")?,
                HistField::Estime => h.estime = n("ESTIME")?,
                HistField::Eetime => h.eetime = n("EETIME")?,
            }
        }
    }
    Ok(())
}

fn finish_vm(
    vm: &mut Partial,
    pos: &mut Pos,
    on_vm: &mut dyn FnMut(VmRecord),
) -> Result<(), OnedError> {
    let done = std::mem::take(vm);
    let missing: Vec<&str> = [
        ("ID", done.seen_id),
        ("STATE", done.seen_state),
        ("LCM_STATE", done.seen_lcm),
    ]
    .iter()
    .filter(|(_, seen)| !seen)
    .map(|(n, _)| *n)
    .collect();
    if done.seen_id {
        pos.id = Some(done.rec.id);
    }
    if !missing.is_empty() {
        return Err(pool_err(
            pos.vm(),
            format!("missing element(s) {}", missing.join(", ")),
        ));
    }
    pos.last_id = Some(done.rec.id);
    pos.id = None;
    on_vm(done.rec);
    Ok(())
}

/// The outcome of a scan of the whole pool.
#[derive(Debug, Default)]
pub struct PoolScan {
    /// VMs `keep` accepted, in the order read (each id once).
    pub kept: Vec<VmRecord>,
    /// Distinct VMs seen.
    pub total: u64,
    /// Requests made.
    pub pages: u32,
}

/// Fetches one page: `one.vmpool.infoextended(session, -2, offset, -page_size, -1)`.
pub async fn fetch_page(
    client: &Client,
    offset: u32,
    page_size: u32,
    retry: Retry,
    cancel: &mut Option<Cancel>,
) -> Result<String, OnedError> {
    let params = [
        Value::Integer(FILTER_ALL),
        Value::Integer(i32::try_from(offset).unwrap_or(i32::MAX)),
        Value::Integer(-i32::try_from(page_size).unwrap_or(i32::MAX)),
        Value::Integer(STATE_NOT_DONE),
    ];
    match client
        .call_retrying(INFOEXTENDED, &params, retry, cancel)
        .await?
    {
        Value::String(s) => Ok(s),
        other => Err(OnedError::Protocol {
            endpoint: client.endpoint().url.clone(),
            method: INFOEXTENDED.into(),
            detail: format!("expected the VM pool as a string, found {}", kind(&other)),
        }),
    }
}

/// Reads every VM except DONE ones, page by page, keeping those `keep` accepts. The next page
/// is requested while the current one is parsed. A VM seen twice (the pool shifted between
/// pages) counts once.
pub async fn scan_pool(
    client: &Client,
    page_size: u32,
    retry: Retry,
    cancel: &mut Option<Cancel>,
    keep: fn(&VmRecord) -> bool,
) -> Result<PoolScan, OnedError> {
    let page_size = page_size.max(1);
    let mut scan = PoolScan::default();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut offset = 0u32;
    let mut current = fetch_page(client, offset, page_size, retry, cancel).await?;
    scan.pages = 1;
    loop {
        let next_offset = offset.saturating_add(page_size);
        let body = std::mem::take(&mut current);
        let parse = tokio::task::spawn_blocking(move || {
            let mut ids = Vec::new();
            let mut kept = Vec::new();
            let n = parse_pool(&body, &mut |vm| {
                ids.push(vm.id);
                if keep(&vm) {
                    kept.push(vm);
                }
            })?;
            Ok::<_, OnedError>((n, ids, kept))
        });
        let mut cancel2 = cancel.clone();
        let (parsed, next) = tokio::join!(
            parse,
            fetch_page(client, next_offset, page_size, retry, &mut cancel2)
        );
        let (n, ids, kept) = parsed.map_err(|e| pool_err("the page".into(), e.to_string()))??;
        let fresh: HashSet<i64> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        scan.total += fresh.len() as u64;
        scan.kept
            .extend(kept.into_iter().filter(|vm| fresh.contains(&vm.id)));
        if n < page_size as usize {
            return Ok(scan);
        }
        current = next?;
        scan.pages += 1;
        offset = next_offset;
    }
}

#[cfg(test)]
mod tests;
