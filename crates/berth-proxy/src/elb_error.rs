//! Responses the load balancer generates itself (400, 502, 503, 504), in ALB's format:
//! as a hyper response, or written as HTTP/1.1 bytes for the fast path. Each one is
//! counted in the listener's ELB response metrics.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::h1_codec::write_status;
use crate::metrics::ListenerMetrics;

/// The HTML body of a response the load balancer generates.
pub(crate) fn body(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    )
}

/// The response for hyper.
pub(crate) fn response(status: StatusCode, m: &ListenerMetrics) -> Response<ProxyBody> {
    m.elb_response(status.as_u16());
    let mut r = Response::new(ProxyBody::full(body(status)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("berth"));
    r
}

/// The response as HTTP/1.1 bytes in `out` (replacing what it held), with
/// `connection: close` when the connection closes after it.
pub(crate) fn write(out: &mut Vec<u8>, status: StatusCode, m: &ListenerMetrics, close: bool) {
    m.elb_response(status.as_u16());
    let body = body(status);
    out.clear();
    write_status(out, status.as_u16(), "");
    out.extend_from_slice(b"content-type: text/html\r\nserver: berth\r\ncontent-length: ");
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn both_forms_carry_the_same_status_and_body() {
        let metrics = Metrics::new(&prometheus::Registry::new()).listener("lb", "arn:l");
        let r = response(StatusCode::BAD_GATEWAY, &metrics);
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html");
        let mut out = Vec::new();
        write(&mut out, StatusCode::BAD_GATEWAY, &metrics, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"));
        let b = body(StatusCode::BAD_GATEWAY);
        assert!(text.ends_with(&b));
        assert!(text.contains(&format!("content-length: {}\r\n", b.len())));
        assert!(b.contains("<h1>502 Bad Gateway</h1>"));
    }
}
