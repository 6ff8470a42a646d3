//! Limits for peer connections that have not authenticated yet, so a port scan or a flood
//! holds neither memory nor tasks for long: at most `MAX_UNAUTHENTICATED` such connections
//! at once (further ones are closed at accept), and each must complete the Noise handshake
//! within `HANDSHAKE_DEADLINE` of its accept or it is closed. Authenticated connections
//! (key holders) are not limited here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::transport::TransportStats;

/// Connections accepted but not yet authenticated, at most.
pub const MAX_UNAUTHENTICATED: usize = 32;
/// From accept to a completed handshake, at most.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Marks one connection as unauthenticated until released.
struct Slot {
    count: Arc<AtomicUsize>,
    released: AtomicBool,
}

impl Slot {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
    fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// The server's view of its unauthenticated connections.
#[derive(Default)]
pub struct ConnLimits {
    count: Arc<AtomicUsize>,
    open: Mutex<HashMap<SocketAddr, Weak<Slot>>>,
}

impl ConnLimits {
    /// The connection from `remote` completed its handshake: no deadline, no longer counted.
    pub fn authenticated(&self, remote: Option<SocketAddr>) {
        let Some(remote) = remote else { return };
        let slot = match self.open.lock() {
            Ok(m) => m.get(&remote).and_then(Weak::upgrade),
            Err(p) => p.into_inner().get(&remote).and_then(Weak::upgrade),
        };
        if let Some(s) = slot {
            s.release();
        }
    }

    /// Unauthenticated connections now.
    pub fn unauthenticated(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn forget(&self, remote: SocketAddr) {
        let mut m = match self.open.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.remove(&remote);
    }
}

/// A TCP connection under the limits.
pub struct Guarded {
    inner: TcpStream,
    remote: SocketAddr,
    slot: Arc<Slot>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limits: Arc<ConnLimits>,
    stats: Arc<TransportStats>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.limits.forget(self.remote);
    }
}

impl Guarded {
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Result<(), std::io::Error> {
        if !self.slot.is_released() && self.deadline.as_mut().poll(cx).is_ready() {
            self.slot.release();
            self.stats.unauth_refused.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no authenticated peer handshake in time",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Err(e) = self.check_deadline(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepts connections, closing at once those beyond the unauthenticated limit.
pub fn incoming(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    stats: Arc<TransportStats>,
) -> impl Stream<Item = Result<Guarded, std::io::Error>> {
    futures::stream::unfold(
        (listener, limits, stats),
        |(listener, limits, stats)| async move {
            loop {
                let (tcp, remote) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: do not spin.
                        tracing::warn!("peer port: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if limits.count.load(Ordering::Acquire) >= MAX_UNAUTHENTICATED {
                    stats.unauth_refused.fetch_add(1, Ordering::Relaxed);
                    drop(tcp);
                    continue;
                }
                let _ = tcp.set_nodelay(true);
                limits.count.fetch_add(1, Ordering::AcqRel);
                let slot = Arc::new(Slot {
                    count: limits.count.clone(),
                    released: AtomicBool::new(false),
                });
                match limits.open.lock() {
                    Ok(mut m) => m.insert(remote, Arc::downgrade(&slot)),
                    Err(p) => p.into_inner().insert(remote, Arc::downgrade(&slot)),
                };
                let conn = Guarded {
                    inner: tcp,
                    remote,
                    slot,
                    deadline: Box::pin(tokio::time::sleep(HANDSHAKE_DEADLINE)),
                    limits: limits.clone(),
                    stats: stats.clone(),
                };
                return Some((Ok(conn), (listener, limits, stats)));
            }
        },
    )
}
