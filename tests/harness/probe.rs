//! What a client sees over time: a TCP connection attempt to ADDR:PORT every period (10 ms
//! in the benchmarks), each with its own timeout, so the moment the floating IP answers from
//! a new holder is seen within one period even while older attempts still wait on a dead
//! neighbour entry. Runs on a thread of its own inside the host's network namespace.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::host::Host;
use super::netns::enter_netns;

/// Time one attempt may take to connect (ARP resolution included).
const ATTEMPT_CONNECT: Duration = Duration::from_millis(500);
/// Time one attempt may take to read the answer after connecting.
const ATTEMPT_READ: Duration = Duration::from_millis(500);

/// One answer the client got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Connected; the server wrote this (trimmed) and closed.
    Served(String),
    /// The address answered with a reset: someone holds it, nothing listens on the port.
    Refused,
}

/// A running probe; stops when dropped.
pub struct Probe {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<(Instant, Answer)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    /// Starts probing `addr:port` from this host every `period`. Answers are kept with the
    /// moment they arrived; timeouts and unreachable errors are not answers.
    pub fn probe_tcp(&self, addr: IpAddr, port: u16, period: Duration) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (stop.clone(), answers.clone());
        let ns = self.ns().to_string();
        let target = SocketAddr::new(addr, port);
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("probe runtime: {e}"));
            rt.block_on(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !flag.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let sink = sink.clone();
                    tokio::spawn(async move {
                        if let Some(a) = attempt(target).await {
                            lock(&sink).push((Instant::now(), a));
                        }
                    });
                }
            });
        });
        Probe {
            stop,
            answers,
            thread: Some(thread),
        }
    }
}

async fn attempt(target: SocketAddr) -> Option<Answer> {
    let connect = tokio::time::timeout(ATTEMPT_CONNECT, tokio::net::TcpStream::connect(target));
    let mut stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Some(Answer::Refused);
        }
        _ => return None,
    };
    let mut text = String::new();
    match tokio::time::timeout(ATTEMPT_READ, stream.read_to_string(&mut text)).await {
        Ok(Ok(_)) => Some(Answer::Served(text.trim().to_string())),
        _ => None,
    }
}

impl Probe {
    /// The first answer at or after `t` that satisfies `pred`, with its arrival time.
    pub fn first_after(
        &self,
        t: Instant,
        pred: impl Fn(&Answer) -> bool,
    ) -> Option<(Instant, Answer)> {
        lock(&self.answers)
            .iter()
            .find(|(at, a)| *at >= t && pred(a))
            .cloned()
    }

    /// The last answer of all, if any.
    pub fn last(&self) -> Option<(Instant, Answer)> {
        lock(&self.answers).last().cloned()
    }

    /// Moments when `name` served, between `from` and `to`.
    pub fn served_between(&self, name: &str, from: Instant, to: Instant) -> Vec<Instant> {
        lock(&self.answers)
            .iter()
            .filter(|(at, a)| {
                *at >= from && *at <= to && matches!(a, Answer::Served(n) if n == name)
            })
            .map(|(at, _)| *at)
            .collect()
    }

    /// Time within `[from, to]` during which nobody served: the sum of the gaps between
    /// consecutive served answers (and the window's ends) longer than `slack`.
    pub fn unserved_time(&self, from: Instant, to: Instant, slack: Duration) -> Duration {
        let answers = lock(&self.answers);
        let mut last = from;
        let mut total = Duration::ZERO;
        let served = answers
            .iter()
            .filter(|(at, a)| *at >= from && *at <= to && matches!(a, Answer::Served(_)));
        for (at, _) in served.chain(std::iter::once(&(to, Answer::Refused))) {
            let gap = at.saturating_duration_since(last);
            if gap > slack {
                total += gap;
            }
            last = *at;
        }
        total
    }

    /// Forgets answers older than `t` (long campaigns).
    pub fn forget_before(&self, t: Instant) {
        lock(&self.answers).retain(|(at, _)| *at >= t);
    }

    /// Stops probing.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
