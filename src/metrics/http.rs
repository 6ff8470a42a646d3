//! A tiny HTTP/1.1 server for the metrics: `GET /metrics` answers 200 with the exposition
//! text, anything else 404; one request per connection, bounded in size, time and number.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Largest request head read; longer requests are refused.
const MAX_HEAD: usize = 8192;
/// Time a client gets to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; further ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

/// Listens on `addr` and serves `source()` on `GET /metrics` until `shutdown` turns true.
/// Binding errors are returned (the address is in use, not local...); the task ends on
/// shutdown.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<dyn Fn() -> String + Send + Sync>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr} for metrics: {e}; change metrics.listen or free the port")
    })?;
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let permit = tokio::select! {
                _ = shutdown.changed() => continue,
                p = limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (stream, _) = tokio::select! {
                _ = shutdown.changed() => continue,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("metrics: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let source = source.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = tokio::time::timeout(IO_TIMEOUT, answer(stream, &*source)).await {
                    tracing::debug!("metrics: client too slow: {e}");
                }
            });
        }
    }))
}

/// Reads the request head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return (!buf.is_empty()).then_some(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Some(buf);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// Status line and body for a request head.
pub(crate) fn route(head: &[u8], source: &dyn Fn() -> String) -> (&'static str, String) {
    let text = String::from_utf8_lossy(head);
    let first = text.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", "bad request line\n".into());
    };
    if !version.starts_with("HTTP/1.") {
        return ("400 Bad Request", "HTTP/1.x only\n".into());
    }
    let path = target.split('?').next().unwrap_or(target);
    if method == "GET" && path == "/metrics" {
        ("200 OK", source())
    } else {
        ("404 Not Found", "not found: try GET /metrics\n".into())
    }
}

async fn answer(mut stream: TcpStream, source: &(dyn Fn() -> String + Send + Sync)) {
    let (status, body) = match read_head(&mut stream).await {
        Some(head) => route(&head, source),
        None => (
            "400 Bad Request",
            "request head too large or cut\n".to_string(),
        ),
    };
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).await.is_ok() {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}
