//! Errors of the OpenNebula client and the report, each saying what to do next.

use std::fmt;

use super::terminal::sanitize;

/// OpenNebula's application error codes (`include/Request.h`), carried in the third element of
/// a failed reply. They are not XML-RPC faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0x100: the session was refused.
    Authentication,
    /// 0x200: the user may not do this.
    Authorization,
    /// 0x400: no such object.
    NoExists,
    /// 0x800: the action is not allowed in the object's state.
    Action,
    /// 0x1000: bad call (wrong parameters).
    XmlRpcApi,
    /// 0x2000: internal error (also: oned's Raft electing or replicating).
    Internal,
    /// 0x4000: allocation failed.
    Allocate,
    /// 0x8000: the object is locked.
    Locked,
    /// 0x10000: replication to the federation failed.
    Replication,
    /// A code this version does not know.
    Other(i64),
}

impl ErrorCode {
    /// The code for a number from a reply.
    pub fn from_number(n: i64) -> ErrorCode {
        match n {
            0x100 => ErrorCode::Authentication,
            0x200 => ErrorCode::Authorization,
            0x400 => ErrorCode::NoExists,
            0x800 => ErrorCode::Action,
            0x1000 => ErrorCode::XmlRpcApi,
            0x2000 => ErrorCode::Internal,
            0x4000 => ErrorCode::Allocate,
            0x8000 => ErrorCode::Locked,
            0x10000 => ErrorCode::Replication,
            other => ErrorCode::Other(other),
        }
    }

    /// The number oned sends.
    pub fn number(self) -> i64 {
        match self {
            ErrorCode::Authentication => 0x100,
            ErrorCode::Authorization => 0x200,
            ErrorCode::NoExists => 0x400,
            ErrorCode::Action => 0x800,
            ErrorCode::XmlRpcApi => 0x1000,
            ErrorCode::Internal => 0x2000,
            ErrorCode::Allocate => 0x4000,
            ErrorCode::Locked => 0x8000,
            ErrorCode::Replication => 0x10000,
            ErrorCode::Other(n) => n,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorCode::Authentication => "AUTHENTICATION",
            ErrorCode::Authorization => "AUTHORIZATION",
            ErrorCode::NoExists => "NO_EXISTS",
            ErrorCode::Action => "ACTION",
            ErrorCode::XmlRpcApi => "XML_RPC_API",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Allocate => "ALLOCATE",
            ErrorCode::Locked => "LOCKED",
            ErrorCode::Replication => "REPLICATION",
            ErrorCode::Other(n) => return write!(f, "error code {n:#x}"),
        };
        f.write_str(name)
    }
}

/// Everything that can go wrong talking to oned or building the report.
#[derive(Debug, thiserror::Error)]
pub enum OnedError {
    /// Endpoint or session could not be determined, or a setting is wrong.
    #[error("{0}")]
    Config(String),
    /// No TCP connection (refused, unreachable, name not resolved).
    #[error(
        "cannot connect to oned at {endpoint}: {detail}; is the opennebula unit running on this \
         node, and is the endpoint right?"
    )]
    Connect {
        /// The endpoint URL.
        endpoint: String,
        /// What the system said.
        detail: String,
        /// True when the connection was refused (oned not listening yet): worth retrying.
        refused: bool,
    },
    /// The request or its reply did not complete in time.
    #[error(
        "oned at {endpoint} did not answer {method} within {secs:.1}s; it may be overloaded or \
         hung: check `systemctl status opennebula` and /var/log/one/oned.log, or raise \
         opennebula.timeout"
    )]
    Timeout {
        /// The endpoint URL.
        endpoint: String,
        /// The method called.
        method: String,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// HTTP-level failure: connection closed early, bad status, oversized reply.
    #[error("HTTP exchange with oned at {endpoint} failed during {method}: {detail}")]
    Http {
        /// The endpoint URL.
        endpoint: String,
        /// The method called.
        method: String,
        /// What went wrong.
        detail: String,
    },
    /// The reply is not the XML-RPC oned sends.
    #[error(
        "oned at {endpoint} sent a reply to {method} that is not valid OpenNebula XML-RPC: \
         {detail}; is the endpoint really oned's (port 2633, path /RPC2)?"
    )]
    Protocol {
        /// The endpoint URL.
        endpoint: String,
        /// The method called.
        method: String,
        /// What is wrong with it.
        detail: String,
    },
    /// An XML-RPC fault (oned answers these only for unknown methods or bad parameter types).
    #[error("oned answered {method} with XML-RPC fault {code}: {message}")]
    Fault {
        /// The method called.
        method: String,
        /// Fault code.
        code: i32,
        /// Fault string.
        message: String,
    },
    /// oned answered with an application error.
    #[error("oned refused {method}: {code}: {message}{hint}")]
    Api {
        /// The method called.
        method: String,
        /// The error code, by name.
        code: ErrorCode,
        /// oned's message.
        message: String,
        /// What to do (may be empty).
        hint: String,
    },
    /// The VM pool XML is malformed or has a value of the wrong type.
    #[error("the VM pool from oned is malformed at {context}: {detail}")]
    Pool {
        /// Which VM and element.
        context: String,
        /// What is wrong.
        detail: String,
    },
    /// Writing or reading the report file failed.
    #[error("report file {path}: {detail}")]
    ReportFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// Stopped by the caller (shutdown, lost ownership).
    #[error("stopped before the report was made")]
    Cancelled,
}

impl OnedError {
    /// An application error with the hint that fits its code.
    pub fn api(method: &str, code: ErrorCode, message: String) -> OnedError {
        let hint = match code {
            ErrorCode::Authentication => {
                "; the session in the auth file was refused: check user and password \
                 (oneadmin's ~/.one/one_auth) or give another with --auth-file"
            }
            ErrorCode::Authorization => {
                "; this user may not list all VMs: use oneadmin's session (--auth-file)"
            }
            ErrorCode::Internal if is_transient_internal(&message) => {
                "; oned's own Raft is electing or replicating: retry in a few seconds"
            }
            _ => "",
        };
        OnedError::Api {
            method: method.to_string(),
            code,
            message,
            hint: hint.to_string(),
        }
    }

    /// The error with every `secret` in its texts replaced by `<redacted>` (oned, a proxy or
    /// an HTTP error page may echo the session it was sent), and control characters escaped
    /// ([`sanitize`]): its text came from the other end and goes to terminals and logs.
    pub fn cleaned(self, secrets: &[String]) -> OnedError {
        let r = |text: String| {
            let text = secrets
                .iter()
                .fold(text, |t, s| t.replace(s.as_str(), "<redacted>"));
            sanitize(&text).into_owned()
        };
        match self {
            OnedError::Config(m) => OnedError::Config(r(m)),
            OnedError::Connect {
                endpoint,
                detail,
                refused,
            } => OnedError::Connect {
                endpoint,
                detail: r(detail),
                refused,
            },
            OnedError::Http {
                endpoint,
                method,
                detail,
            } => OnedError::Http {
                endpoint,
                method,
                detail: r(detail),
            },
            OnedError::Protocol {
                endpoint,
                method,
                detail,
            } => OnedError::Protocol {
                endpoint,
                method,
                detail: r(detail),
            },
            OnedError::Fault {
                method,
                code,
                message,
            } => OnedError::Fault {
                method,
                code,
                message: r(message),
            },
            OnedError::Api {
                method,
                code,
                message,
                hint,
            } => OnedError::Api {
                method,
                code,
                message: r(message),
                hint,
            },
            OnedError::Pool { context, detail } => OnedError::Pool {
                context: r(context),
                detail: r(detail),
            },
            other => other,
        }
    }

    /// True for conditions that pass on their own while oned starts or elects a leader:
    /// connection refused, and INTERNAL "election mode", "replicating log", "no leader".
    pub fn is_transient(&self) -> bool {
        match self {
            OnedError::Connect { refused, .. } => *refused,
            OnedError::Api {
                code: ErrorCode::Internal,
                message,
                ..
            } => is_transient_internal(message),
            _ => false,
        }
    }
}

fn is_transient_internal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["election mode", "replicating log", "no leader"]
        .iter()
        .any(|k| m.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_by_name() {
        for n in [
            0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 7,
        ] {
            assert_eq!(ErrorCode::from_number(n).number(), n);
        }
        assert_eq!(ErrorCode::from_number(0x2000).to_string(), "INTERNAL");
        assert_eq!(ErrorCode::from_number(0x1000).to_string(), "XML_RPC_API");
        assert_eq!(ErrorCode::from_number(0x10000).to_string(), "REPLICATION");
        assert_eq!(ErrorCode::from_number(3).to_string(), "error code 0x3");
    }

    /// Found by fuzzing: an error text that echoed the session was printed as is.
    #[test]
    fn cleaned_errors_hide_the_session_and_escape_controls() {
        let secrets = vec![
            "oneadmin:pw&x".to_string(),
            "pw&x".into(),
            "pw&amp;x".into(),
        ];
        for e in [
            OnedError::api("m", ErrorCode::Authentication, "bad oneadmin:pw&x".into()),
            OnedError::Fault {
                method: "m".into(),
                code: 1,
                message: "session pw&amp;x\x1b[2J".into(),
            },
            OnedError::Http {
                endpoint: "e".into(),
                method: "m".into(),
                detail: "HTTP status 500: <p>pw&x</p>".into(),
            },
        ] {
            let text = e.cleaned(&secrets).to_string();
            assert!(!text.contains("pw&") && !text.contains('\x1b'), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }

    #[test]
    fn transient_errors() {
        let e = OnedError::api(
            "m",
            ErrorCode::Internal,
            "Cannot process request, oned cluster in election mode".into(),
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("retry"), "{e}");
        let e = OnedError::api("m", ErrorCode::Internal, "Internal error".into());
        assert!(!e.is_transient());
        let e = OnedError::api("m", ErrorCode::Authentication, "nope".into());
        assert!(!e.is_transient());
        assert!(e.to_string().contains("AUTHENTICATION"), "{e}");
    }
}
