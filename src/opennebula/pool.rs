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

use super::error::OnedError;
pub use super::page::{PageBody, PageScan, decode_page, parse_page};
pub use super::parse::parse_pool;
use super::parse::pool_err;
use super::xmlrpc::{Cancel, Client, Retry};

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

/// Fetches one page: `one.vmpool.infoextended(session, -2, offset, -page_size, -1)`. The
/// VM_POOL in it is not decoded yet: see [`parse_page`].
pub async fn fetch_page(
    client: &Client,
    offset: u32,
    page_size: u32,
    retry: Retry,
    cancel: &mut Option<Cancel>,
) -> Result<PageBody, OnedError> {
    let params = [
        Value::Integer(FILTER_ALL),
        Value::Integer(i32::try_from(offset).unwrap_or(i32::MAX)),
        Value::Integer(-i32::try_from(page_size).unwrap_or(i32::MAX)),
        Value::Integer(STATE_NOT_DONE),
    ];
    client
        .call_retrying_with(INFOEXTENDED, &params, retry, cancel, decode_page)
        .await
}

/// How many threads read one page: the cores this process may use, at most 4.
fn page_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Reads every VM except DONE ones, page by page, keeping those `keep` accepts. The next page
/// is requested while the current one is parsed (on blocking threads, several for a large
/// page). A VM seen twice (the pool shifted between pages) counts once.
pub async fn scan_pool(
    client: &Client,
    page_size: u32,
    retry: Retry,
    cancel: &mut Option<Cancel>,
    keep: fn(&VmRecord) -> bool,
) -> Result<PoolScan, OnedError> {
    // At least 2: oned reads an `end` of -1 as "no limit", not as a page of one VM.
    let page_size = page_size.max(2);
    let threads = page_threads();
    let mut scan = PoolScan::default();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut offset = 0u32;
    let mut progress = Progress::default();
    let mut current = fetch_page(client, offset, page_size, retry, cancel).await?;
    scan.pages = 1;
    loop {
        let next_offset = offset.saturating_add(page_size);
        let parse =
            tokio::task::spawn_blocking(move || parse_page(&current, INFOEXTENDED, keep, threads));
        let mut cancel2 = cancel.clone();
        let (parsed, next) = tokio::join!(
            parse,
            fetch_page(client, next_offset, page_size, retry, &mut cancel2)
        );
        let page = parsed
            .map_err(|e| pool_err("the page".into(), e.to_string()))?
            .map_err(|e| client.with_endpoint(e).cleaned(&[]))?;
        if scan.pages > 1 {
            progress
                .check(&page.ids, &seen, offset)
                .map_err(|detail| OnedError::Protocol {
                    endpoint: client.endpoint().url.clone(),
                    method: INFOEXTENDED.into(),
                    detail,
                })?;
        }
        progress.note(&page.ids);
        let fresh: HashSet<i64> = page.ids.into_iter().filter(|id| seen.insert(*id)).collect();
        scan.total += fresh.len() as u64;
        scan.kept
            .extend(page.kept.into_iter().filter(|vm| fresh.contains(&vm.id)));
        if page.count < page_size as usize {
            return Ok(scan);
        }
        current = next?;
        scan.pages += 1;
        offset = next_offset;
    }
}

/// Checks that pages advance: oned lists VMs ordered by id (descending by default,
/// `API_LIST_ORDER`), so each page must bring VMs not read before, and its last VM must lie
/// beyond the previous page's last in that order. An endpoint that answers every offset with
/// the same page would otherwise be read forever.
#[derive(Debug, Default)]
struct Progress {
    /// True when ids go down, once a page with two different ids showed it.
    descending: Option<bool>,
    /// Last id of the previous page.
    last: Option<i64>,
}

impl Progress {
    /// Records a page that was accepted.
    fn note(&mut self, ids: &[i64]) {
        if let (Some(first), Some(last)) = (ids.first(), ids.last())
            && first != last
            && self.descending.is_none()
        {
            self.descending = Some(last < first);
        }
        if let Some(last) = ids.last() {
            self.last = Some(*last);
        }
    }

    /// An error (what happened and what it means) when the page at `offset` does not advance.
    fn check(&self, ids: &[i64], seen: &HashSet<i64>, offset: u32) -> Result<(), String> {
        let Some(&last) = ids.last() else {
            return Ok(());
        };
        let fresh = ids.iter().any(|id| !seen.contains(id));
        let beyond = match (self.descending, self.last) {
            (Some(true), Some(prev)) => last < prev,
            (Some(false), Some(prev)) => last > prev,
            _ => true,
        };
        if fresh && beyond {
            return Ok(());
        }
        Err(format!(
            "the page at offset {offset} does not advance (it {} VM {last}, the previous page \
             ended at VM {}); oned pages by id, so either this endpoint does not page like \
             oned (a proxy or cache answering every offset alike?) or more VMs were created \
             while paging than fit in a page (run the report again): it stops rather than \
             read forever",
            if fresh {
                "ends at"
            } else {
                "repeats only VMs already read, ending at"
            },
            self.last.map_or_else(|| "?".into(), |l| l.to_string()),
        ))
    }
}

#[cfg(test)]
mod tests;
