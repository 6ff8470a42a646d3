//! Decoding oned's replies: `[true, value, 0]` or `[false, message, code, resp_id, <i8>]`,
//! and XML-RPC faults.
//!
//! dxr decodes any XML-RPC. Pool replies are large (a page of 200 VMs is about a megabyte of
//! escaped XML), and dxr's serde path costs most of the report's time on them, so the exact
//! shape oned (xmlrpc-c) writes is first read by a small scanner ([`envelope`]); anything
//! else, or anything unusual inside (CDATA, comments, carriage returns), goes to dxr. Tests
//! check that both give the same values.

use dxr::{FaultResponse, MethodResponse, Value};

use super::envelope;
use super::error::{ErrorCode, OnedError};

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
    let fast = fast_values(text).map(Value::Array);
    let value = match fast.map_or_else(|| MethodResponse::from_xml(text).map(|r| r.value), Ok) {
        Ok(v) => v,
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

/// The values of a reply written exactly as oned writes it; `None` for anything else.
fn fast_values(text: &str) -> Option<Vec<Value>> {
    envelope::fast_values(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dxr's reading of a reply, for comparison with the fast path.
    fn slow(text: &str) -> Value {
        MethodResponse::from_xml(text).unwrap().value
    }

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

    #[test]
    fn fast_path_agrees_with_dxr() {
        let cases = [
            "<value><boolean>1</boolean></value><value><string>&lt;VM_POOL&gt;&lt;NAME&gt;&lt;![CDATA[a &amp; b]]&gt;&lt;/NAME&gt;&lt;/VM_POOL&gt;</string></value><value><i4>0</i4></value>",
            "<value><boolean>0</boolean></value><value><string>[m] x &#233; &quot;q&quot; &apos;</string></value><value><i4>8192</i4></value><value><i4>-1</i4></value><value><i8>-9000000000</i8></value>",
            "<value>  <boolean>1</boolean>  </value><value>untyped &amp; text</value><value><int>7</int></value>",
            "<value><boolean>1</boolean></value><value><string/></value><value><i4>0</i4></value>",
            "<value><boolean>1</boolean></value><value><string></string></value><value><i4> 3 </i4></value>",
            "<value><boolean>1</boolean></value><value></value><value><i4>0</i4></value>",
        ];
        for values in cases {
            let text = reply(values);
            let fast = fast_values(&text).map(Value::Array);
            assert_eq!(fast, Some(slow(&text)), "{values}");
        }
    }

    #[test]
    fn unusual_replies_fall_back_to_dxr() {
        for values in [
            "<value><string><![CDATA[<raw>]]></string></value>",
            "<value><double>1.5</double></value>",
            "<value><string>a\r\nb</string></value>",
            "<value><struct><member><name>a</name><value><i4>1</i4></value></member></struct></value>",
            "<!-- c --><value><i4>1</i4></value>",
            "<value><boolean>2</boolean></value>",
        ] {
            assert_eq!(fast_values(&reply(values)), None, "{values}");
        }
        let body = reply(
            "<value><boolean>1</boolean></value><value><string><![CDATA[<VM_POOL/>]]></string></value><value><i4>0</i4></value>",
        );
        assert_eq!(
            decode_reply(body.as_bytes(), "m").unwrap(),
            Value::String("<VM_POOL/>".into())
        );
        assert_eq!(fast_values(&format!("{} trailing", reply(""))), None);
    }
}
