//! Reading one VM_POOL document as a stream with quick-xml.
//!
//! Per VM only what the report needs is kept (ID, NAME, UNAME, STATE, LCM_STATE, DEPLOY_ID,
//! STIME and the last HISTORY record); every other element is skipped whole (see [`skip`]),
//! and a VM is handed to the caller as soon as its `</VM>` is read.
//!
//! [`skip`]: super::skip

use quick_xml::Reader;
use quick_xml::errors::IllFormedError;
use quick_xml::events::{BytesRef, Event};
use quick_xml::name::QName;

use super::error::OnedError;
use super::pool::{History, VmRecord};
use super::skip::content_end;

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

/// An error about the VM pool's content.
pub fn pool_err(context: String, detail: String) -> OnedError {
    OnedError::Pool { context, detail }
}

/// Resolves a character or predefined entity reference (`&#60;`, `&lt;`).
pub(crate) fn resolve_ref(r: &BytesRef<'_>) -> Result<char, String> {
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

/// Levels whose element names are kept for messages (VM_POOL, VM, its children, HISTORY,
/// its children).
const NAMED_LEVELS: usize = 5;

/// Names of the open elements, for "the document ends inside <...>".
#[derive(Default)]
struct Names {
    /// Each name followed by `>`.
    text: String,
}

impl Names {
    fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.text.push('>');
    }
    fn pop(&mut self) {
        let keep = self
            .text
            .trim_end_matches('>')
            .rfind('>')
            .map_or(0, |i| i + 1);
        self.text.truncate(keep);
    }
    /// `<A><B>` plus `<last>` when given.
    fn describe(&self, last: Option<&str>) -> String {
        let mut out: String = self
            .text
            .split_terminator('>')
            .map(|n| format!("<{n}>"))
            .collect();
        if let Some(l) = last {
            out.push_str(&format!("<{l}>"));
        }
        out
    }
}

fn cut_short(pos: &Pos, names: &Names, last: Option<&str>) -> OnedError {
    pool_err(
        pos.vm(),
        format!(
            "the document ends inside {}: the reply was cut short",
            names.describe(last)
        ),
    )
}

/// Skips the content and end tag of `name`, whose start tag was just read: quickly when
/// [`content_end`] can, else with quick-xml. Returns the bytes jumped over without quick-xml
/// seeing them (its position misses them).
fn skip_element(
    reader: &mut Reader<&[u8]>,
    name: &str,
    pos: &Pos,
    names: &Names,
) -> Result<usize, OnedError> {
    let rest: &[u8] = reader.get_ref();
    if let Some(at) = content_end(rest, name.as_bytes())
        && let Some(tail) = rest.get(at..)
    {
        *reader.get_mut() = tail;
        // quick-xml reads the end tag itself, checking it against the start tag it saw.
        return match reader.read_event() {
            Ok(Event::End(_)) => Ok(at),
            other => Err(pool_err(
                format!("{} element {name}", pos.vm()),
                format!("malformed XML: expected </{name}>, found {other:?}"),
            )),
        };
    }
    match reader.read_to_end(QName(name)) {
        Ok(_) => Ok(0),
        Err(quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(_))) => {
            Err(cut_short(pos, names, Some(name)))
        }
        Err(err) => Err(pool_err(
            format!("{} element {name}", pos.vm()),
            format!("malformed XML: {err}"),
        )),
    }
}

/// Parses one VM_POOL document, calling `on_vm` for each complete VM; returns the number of
/// VMs read. Elements the report does not need (TEMPLATE, MONITORING, unknown ones...) are
/// skipped whole; CDATA and character/entity references are decoded.
pub fn parse_pool(xml: &str, on_vm: &mut dyn FnMut(VmRecord)) -> Result<usize, OnedError> {
    parse_pool_part(xml, on_vm, false)
}

/// Like [`parse_pool`]; with `open_end`, the document must instead end between two VMs inside
/// the root (`<VM_POOL><VM>...</VM>` and nothing more), as the first pieces of a page split
/// at VM boundaries do.
pub fn parse_pool_part(
    xml: &str,
    on_vm: &mut dyn FnMut(VmRecord),
    open_end: bool,
) -> Result<usize, OnedError> {
    let mut reader = Reader::from_str(xml);
    let mut skipped = 0usize;
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
    let mut names = Names::default();
    loop {
        let offset = reader.buffer_position() as usize + skipped;
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
                // Whether the report reads anything inside this element.
                let mut wanted = true;
                if depth == 0 {
                    if root_seen || name != "VM_POOL" {
                        return Err(pool_err(
                            "the document root".into(),
                            format!("expected <VM_POOL>, found <{name}>"),
                        ));
                    }
                    root_seen = true;
                } else if depth == 1 {
                    wanted = name == "VM";
                    if wanted {
                        in_vm = true;
                        pos.index += 1;
                        pos.id = None;
                        vm = Partial::default();
                    }
                } else if in_vm && depth == 2 {
                    if name == "HISTORY_RECORDS" {
                        in_records = !empty;
                    } else if let Some(f) = vm_field(name) {
                        field = Some((Field::Vm(f), depth));
                    } else {
                        wanted = false;
                    }
                } else if in_records && depth == 3 {
                    wanted = name == "HISTORY";
                    if wanted {
                        in_history = !empty;
                        vm.hist = Some(History::default());
                    }
                } else if in_history && depth == 4 {
                    match hist_field(name) {
                        Some(f) => field = Some((Field::Hist(f), depth)),
                        None => wanted = false,
                    }
                }
                if !wanted {
                    if !empty {
                        skipped += skip_element(&mut reader, name, &pos, &names)?;
                    }
                    continue;
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
                        names.push(name);
                    }
                    depth += 1;
                    text.clear();
                }
            }
            Event::End(ref e) => {
                depth = depth.saturating_sub(1);
                if depth < NAMED_LEVELS {
                    names.pop();
                }
                if let Some((f, d)) = field
                    && d == depth
                {
                    store(&mut vm, f, &text, &mut pos)?;
                    field = None;
                    text.clear();
                }
                let name = e.name();
                match (depth, name.as_ref()) {
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
                if open_end {
                    if depth == 1 {
                        return Ok(pos.index);
                    }
                    return Err(pool_err(
                        pos.vm(),
                        format!("a piece of the page ends at depth {depth}, not between VMs"),
                    ));
                }
                if depth != 0 {
                    return Err(cut_short(&pos, &names, None));
                }
                return Ok(pos.index);
            }
            _ => {}
        }
    }
}

fn int(value: &str, element: &str, pos: &Pos) -> Result<i64, OnedError> {
    int_in(value, "", element, pos)
}

/// An integer in element `parent` + `element` (the name is only built for an error).
fn int_in(value: &str, parent: &str, element: &str, pos: &Pos) -> Result<i64, OnedError> {
    let v = value.trim();
    v.parse::<i64>().map_err(|_| {
        pool_err(
            format!("{} element {parent}{element}", pos.vm()),
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
            let n = |el: &str| int_in(value, "HISTORY/", el, pos);
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
