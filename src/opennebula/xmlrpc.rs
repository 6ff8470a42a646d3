//! Async XML-RPC client for oned: HTTP/1.1 POST with hyper, values with dxr.
//!
//! oned answers every call with an array: `[true, value, 0]` on success and
//! `[false, "[method] message", code, resp_id, <i8>idx]` on error. Application errors are not
//! XML-RPC faults. The session is the first parameter of every call and never leaves this
//! module in any message.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dxr::{MethodCall, Value};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::auth::{Endpoint, Session};
use super::error::OnedError;
pub use super::reply::{decode_reply, int_of, kind};

/// Largest reply accepted; a page of VMs is far below this. Protects against a runaway server.
pub const MAX_REPLY_BYTES: usize = 1 << 30;

/// A signal that stops waiting: the operation ends with [`OnedError::Cancelled`] once the value
/// is `true` or every sender is dropped.
pub type Cancel = watch::Receiver<bool>;

/// Resolves when `cancel` fires (value `true`, or the sender dropped); never for `None`.
pub async fn cancelled(cancel: &mut Option<Cancel>) {
    match cancel {
        Some(rx) => {
            let _ = rx.wait_for(|v| *v).await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Reads a reply body (the bytes oned sent) for `method`: the payload, or the error the reply
/// reports.
pub type Decode<T> = fn(Bytes, &str) -> Result<T, OnedError>;

fn decode_value(body: Bytes, method: &str) -> Result<Value, OnedError> {
    decode_reply(&body, method)
}

/// Retries while oned starts or elects: exponential backoff within a window.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Give up once this much time has passed since the first attempt.
    pub window: Duration,
    /// First pause between attempts.
    pub first_delay: Duration,
    /// Longest pause between attempts.
    pub max_delay: Duration,
}

impl Retry {
    /// Retries within `window`, pausing 200ms at first, doubling up to 5s.
    pub fn within(window: Duration) -> Retry {
        Retry {
            window,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// An XML-RPC client for one oned endpoint. Cheap to share (`&Client` from several tasks):
/// idle keep-alive connections are pooled.
pub struct Client {
    endpoint: Endpoint,
    session: Session,
    timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.url)
            .field("session", &self.session)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client for `endpoint` calling as `session`, each request limited to `timeout`.
    pub fn new(endpoint: Endpoint, session: Session, timeout: Duration) -> Client {
        Client {
            endpoint,
            session,
            timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Calls `method` with the session followed by `params`, once. Returns the second element
    /// of a successful reply (the payload).
    pub async fn call(&self, method: &str, params: &[Value]) -> Result<Value, OnedError> {
        self.call_with(method, params, decode_value).await
    }

    /// Like [`Client::call`], but the reply's bytes go to `decode` (for example to read a
    /// large payload later, elsewhere). Errors `decode` returns are reported as the call's.
    pub async fn call_with<T>(
        &self,
        method: &str,
        params: &[Value],
        decode: Decode<T>,
    ) -> Result<T, OnedError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::String(self.session.expose().to_string()));
        all.extend_from_slice(params);
        let call = MethodCall {
            name: method.into(),
            params: all,
        };
        let xml = call.to_xml().map_err(|e| OnedError::Protocol {
            endpoint: self.endpoint.url.clone(),
            method: method.to_string(),
            detail: format!("cannot encode the call: {e}"),
        })?;
        let body = Bytes::from(format!("<?xml version=\"1.0\"?>\n{xml}"));
        let reply = match tokio::time::timeout(self.timeout, self.exchange(method, body)).await {
            Ok(r) => r.map_err(|e| e.cleaned(&self.session.secret_forms()))?,
            Err(_) => {
                return Err(OnedError::Timeout {
                    endpoint: self.endpoint.url.clone(),
                    method: method.to_string(),
                    secs: self.timeout.as_secs_f64(),
                });
            }
        };
        decode(reply, method)
            .map_err(|e| self.with_endpoint(e).cleaned(&self.session.secret_forms()))
    }

    /// Like [`Client::call`], retrying transient failures (see [`OnedError::is_transient`])
    /// with backoff within `retry.window`. Stops early when `cancel` fires.
    pub async fn call_retrying(
        &self,
        method: &str,
        params: &[Value],
        retry: Retry,
        cancel: &mut Option<Cancel>,
    ) -> Result<Value, OnedError> {
        self.call_retrying_with(method, params, retry, cancel, decode_value)
            .await
    }

    /// [`Client::call_retrying`] with the reply's bytes going to `decode`, as in
    /// [`Client::call_with`].
    pub async fn call_retrying_with<T>(
        &self,
        method: &str,
        params: &[Value],
        retry: Retry,
        cancel: &mut Option<Cancel>,
        decode: Decode<T>,
    ) -> Result<T, OnedError> {
        let start = Instant::now();
        let mut delay = retry.first_delay;
        let mut attempt = 1u32;
        loop {
            let result = tokio::select! {
                r = self.call_with(method, params, decode) => r,
                _ = cancelled(cancel) => return Err(OnedError::Cancelled),
            };
            match result {
                Err(e) if e.is_transient() && start.elapsed() + delay <= retry.window => {
                    tracing::info!(
                        method,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        "oned not ready: {e}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancelled(cancel) => return Err(OnedError::Cancelled),
                    }
                    delay = (delay * 2).min(retry.max_delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `e` with this client's endpoint in it, when it names one.
    pub fn with_endpoint(&self, e: OnedError) -> OnedError {
        match e {
            OnedError::Protocol { method, detail, .. } => OnedError::Protocol {
                endpoint: self.endpoint.url.clone(),
                method,
                detail,
            },
            other => other,
        }
    }

    /// One HTTP exchange; a pooled connection that turns out closed is replaced once.
    async fn exchange(&self, method: &str, body: Bytes) -> Result<Bytes, OnedError> {
        if let Some(sender) = self.take_idle() {
            match self.send(sender, method, body.clone()).await {
                Ok(b) => return Ok(b),
                Err(SendError::Stale) => {}
                Err(SendError::Failed(e)) => return Err(e),
            }
        }
        let sender = self.connect().await?;
        match self.send(sender, method, body).await {
            Ok(b) => Ok(b),
            Err(SendError::Stale) => Err(self.http_error(
                method,
                "oned closed the connection without answering".into(),
            )),
            Err(SendError::Failed(e)) => Err(e),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < 4 {
                idle.push(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, OnedError> {
        let ep = &self.endpoint;
        let stream = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| OnedError::Connect {
                endpoint: ep.url.clone(),
                detail: e.to_string(),
                refused: e.kind() == std::io::ErrorKind::ConnectionRefused,
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| OnedError::Connect {
                endpoint: ep.url.clone(),
                detail: e.to_string(),
                refused: false,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("oned connection ended: {e}");
            }
        });
        Ok(sender)
    }

    async fn send(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        method: &str,
        body: Bytes,
    ) -> Result<Bytes, SendError> {
        if sender.ready().await.is_err() {
            return Err(SendError::Stale);
        }
        let ep = &self.endpoint;
        let request = hyper::Request::post(ep.path.as_str())
            .header(hyper::header::HOST, ep.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "text/xml")
            .header(hyper::header::USER_AGENT, "oneha")
            .body(Full::new(body))
            .map_err(|e| SendError::Failed(self.http_error(method, e.to_string())))?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) if e.is_canceled() || e.is_incomplete_message() || e.is_closed() => {
                return Err(SendError::Stale);
            }
            Err(e) => return Err(SendError::Failed(self.http_error(method, e.to_string()))),
        };
        let status = response.status();
        let collected = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| {
                SendError::Failed(self.http_error(
                    method,
                    format!("reading the reply failed (connection closed, or larger than {MAX_REPLY_BYTES} bytes: lower opennebula.page_size): {e}"),
                ))
            })?;
        self.put_idle(sender);
        let bytes = collected.to_bytes();
        if !status.is_success() {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(SendError::Failed(
                self.http_error(method, format!("HTTP status {status}: {head}")),
            ));
        }
        Ok(bytes)
    }

    fn http_error(&self, method: &str, detail: String) -> OnedError {
        OnedError::Http {
            endpoint: self.endpoint.url.clone(),
            method: method.to_string(),
            detail,
        }
    }
}

enum SendError {
    /// The connection was closed before a reply started: try a fresh one.
    Stale,
    Failed(OnedError),
}
