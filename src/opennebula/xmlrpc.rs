//! Async XML-RPC client for oned: HTTP/1.1 POST with hyper, values with dxr.
//!
//! oned answers every call with an array: `[true, value, 0]` on success and
//! `[false, "[method] message", code, resp_id, <i8>idx]` on error. Application errors are not
//! XML-RPC faults. The session is the first parameter of every call and never leaves this
//! module in any message.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dxr::{FaultResponse, MethodCall, MethodResponse, Value};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::auth::{Endpoint, Session};
use super::error::{ErrorCode, OnedError};

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
            Ok(r) => r?,
            Err(_) => {
                return Err(OnedError::Timeout {
                    endpoint: self.endpoint.url.clone(),
                    method: method.to_string(),
                    secs: self.timeout.as_secs_f64(),
                });
            }
        };
        decode_reply(&reply, method).map_err(|e| self.with_endpoint(e))
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
        let start = Instant::now();
        let mut delay = retry.first_delay;
        let mut attempt = 1u32;
        loop {
            let result = tokio::select! {
                r = self.call(method, params) => r,
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

    fn with_endpoint(&self, e: OnedError) -> OnedError {
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

fn protocol(method: &str, detail: String) -> OnedError {
    OnedError::Protocol {
        endpoint: String::new(),
        method: method.to_string(),
        detail,
    }
}

/// Decodes an oned reply body: both array shapes, faults, error codes.
pub fn decode_reply(body: &[u8], method: &str) -> Result<Value, OnedError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| protocol(method, format!("the reply is not UTF-8 ({e})")))?;
    let head = || {
        let t = text.trim_start();
        let mut end = t.len().min(120);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t[..end].to_string()
    };
    let value = match MethodResponse::from_xml(text) {
        Ok(r) => r.value,
        Err(_) => {
            if let Ok(f) = FaultResponse::from_xml(text) {
                return Err(OnedError::Fault {
                    method: method.to_string(),
                    code: f.fault.code(),
                    message: f.fault.string().to_string(),
                });
            }
            return Err(protocol(
                method,
                format!(
                    "not an XML-RPC methodResponse (it starts with `{}`)",
                    head()
                ),
            ));
        }
    };
    let items = match value {
        Value::Array(items) => items,
        other => {
            return Err(protocol(
                method,
                format!("expected an array, found {}", kind(&other)),
            ));
        }
    };
    if items.len() != 3 && items.len() != 5 {
        return Err(protocol(
            method,
            format!(
                "expected an array of 3 (success) or 5 (error) elements, found {}",
                items.len()
            ),
        ));
    }
    let mut it = items.into_iter();
    let (ok, payload, code) = match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => return Err(protocol(method, "reply array too short".into())),
    };
    let ok = match ok {
        Value::Boolean(b) => b,
        other => {
            return Err(protocol(
                method,
                format!("element 1 should be a boolean, found {}", kind(&other)),
            ));
        }
    };
    let code = int_of(&code).ok_or_else(|| {
        protocol(
            method,
            format!("element 3 should be an integer code, found {}", kind(&code)),
        )
    })?;
    if ok {
        return Ok(payload);
    }
    let message = match payload {
        Value::String(s) => s,
        other => {
            return Err(protocol(
                method,
                format!(
                    "element 2 of an error reply should be a string, found {}",
                    kind(&other)
                ),
            ));
        }
    };
    Err(OnedError::api(
        method,
        ErrorCode::from_number(code),
        message,
    ))
}

/// An integer value (`i4` or `i8`).
pub fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(i64::from(*i)),
        Value::Long(l) => Some(*l),
        _ => None,
    }
}

/// The XML-RPC type name of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "an i4",
        Value::Long(_) => "an i8",
        Value::Boolean(_) => "a boolean",
        Value::String(_) => "a string",
        Value::Double(_) => "a double",
        Value::DateTime(_) => "a dateTime",
        Value::Base64(_) => "base64 data",
        Value::Struct(_) => "a struct",
        Value::Array(_) => "an array",
        _ => "another type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(values: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n\
             <param><value><array><data>\r\n{values}</data></array></value></param>\r\n\
             </params>\r\n</methodResponse>\r\n"
        )
    }

    #[test]
    fn success_with_three_elements() {
        let body = reply(
            "<value><boolean>1</boolean></value><value><string>&lt;VM_POOL/&gt;</string></value>\
             <value><i4>0</i4></value>",
        );
        let v = decode_reply(body.as_bytes(), "one.vmpool.infoextended").unwrap();
        assert_eq!(v, Value::String("<VM_POOL/>".into()));
    }

    #[test]
    fn error_with_five_elements_and_i8() {
        let body = reply(
            "<value><boolean>0</boolean></value>\
             <value><string>[one.vmpool.infoextended] User couldn't be authenticated, aborting call.</string></value>\
             <value><i4>256</i4></value><value><i4>-1</i4></value><value><i8>0</i8></value>",
        );
        let e = decode_reply(body.as_bytes(), "one.vmpool.infoextended").unwrap_err();
        match &e {
            OnedError::Api { code, .. } => assert_eq!(*code, ErrorCode::Authentication),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("AUTHENTICATION"), "{e}");
    }

    #[test]
    fn wrong_shapes_are_protocol_errors() {
        for (values, expect) in [
            ("<value><i4>1</i4></value>", "3 (success) or 5"),
            (
                "<value><string>yes</string></value><value><string>x</string></value><value><i4>0</i4></value>",
                "element 1 should be a boolean",
            ),
            (
                "<value><boolean>1</boolean></value><value><string>x</string></value><value><string>0</string></value>",
                "element 3 should be an integer",
            ),
        ] {
            let e = decode_reply(reply(values).as_bytes(), "m")
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{e}");
        }
        let e = decode_reply(b"<html>nope</html>", "m")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not an XML-RPC methodResponse") && e.contains("<html>"),
            "{e}"
        );
        let e = decode_reply(&[0xff, 0xfe], "m").unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn faults_are_reported() {
        let body = "<?xml version=\"1.0\"?><methodResponse><fault><value><struct>\
            <member><name>faultCode</name><value><i4>-501</i4></value></member>\
            <member><name>faultString</name><value><string>no such method</string></value></member>\
            </struct></value></fault></methodResponse>";
        let e = decode_reply(body.as_bytes(), "one.nothing")
            .unwrap_err()
            .to_string();
        assert!(e.contains("-501") && e.contains("no such method"), "{e}");
    }
}
