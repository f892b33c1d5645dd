use super::*;

fn values() -> ForwardedValues {
    ForwardedValues::new("10.0.0.9:4000".parse().unwrap(), 8080, "http")
}

fn written(parts: &http::request::Parts, xff: XffMode, drop_invalid: bool) -> String {
    let mut out = Vec::new();
    write_request(&mut out, parts, xff, drop_invalid, &values());
    String::from_utf8(out).unwrap()
}

#[test]
fn request_head_is_http11_with_the_clients_fields_and_the_proxys() {
    let (mut parts, ()) = http::Request::get("/a/b?x=1")
        .header("host", "example.com")
        .header("x-forwarded-for", "10.0.0.1")
        .header("accept", "*/*")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        written(&parts, XffMode::Append, false),
        "GET /a/b?x=1 HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n\
         x-forwarded-for: 10.0.0.1, 10.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-port: 8080\r\n\r\n"
    );
    parts.method = http::Method::HEAD;
    parts.uri = http::Uri::from_static("/");
    parts.headers.clear();
    assert_eq!(
        written(&parts, XffMode::Remove, false),
        "HEAD / HTTP/1.1\r\nx-forwarded-proto: http\r\nx-forwarded-port: 8080\r\n\r\n"
    );
}

/// An HTTP/2 request as hyper hands it over: an absolute URI from `:scheme` and
/// `:authority`, no Host field.
fn h2_request(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::get("http://api.example.com:8443/v1/items?page=2")
        .version(http::Version::HTTP_2);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// The head's request line and its fields, the fields sorted: the header map's
/// rewrite and the direct writer may order them differently.
fn lines_sorted(head: &str) -> (String, Vec<String>) {
    let mut lines = head.trim_end().split("\r\n").map(str::to_string);
    let first = lines.next().unwrap();
    let mut rest: Vec<String> = lines.collect();
    rest.sort();
    (first, rest)
}

/// Every field the direct writer sends is what the hyper client path sends after
/// `prepare` rewrote the header map: Host from the authority, origin-form target,
/// hop-by-hop fields out, X-Forwarded-* by mode, invalid names dropped when asked.
#[test]
fn the_direct_head_has_the_fields_the_rewritten_header_map_has() {
    let cases: [&[(&str, &str)]; 4] = [
        &[("accept", "*/*")],
        &[
            ("te", "trailers"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-port", "1"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ],
        &[("host", "other.example"), ("x_under", "1"), ("x-ok", "2")],
        &[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ],
    ];
    for fields in cases {
        for xff in [XffMode::Append, XffMode::Preserve, XffMode::Remove] {
            for drop_invalid in [false, true] {
                let parts = h2_request(fields);
                let direct = written(&parts, xff, drop_invalid);
                let mut rewritten = parts.clone();
                crate::hyper_path::prepare(&mut rewritten, &values(), xff, drop_invalid, false);
                let mut head = format!(
                    "{} {} HTTP/1.1\r\n",
                    rewritten.method,
                    rewritten.uri.path_and_query().unwrap()
                );
                for (n, v) in &rewritten.headers {
                    head.push_str(&format!("{n}: {}\r\n", v.to_str().unwrap()));
                }
                assert_eq!(
                    lines_sorted(&direct),
                    lines_sorted(&head),
                    "{fields:?} {xff:?} drop_invalid={drop_invalid}"
                );
                assert!(direct.ends_with("\r\n\r\n"));
            }
        }
    }
    let direct = written(&h2_request(&[]), XffMode::Append, false);
    assert!(direct.starts_with("GET /v1/items?page=2 HTTP/1.1\r\nhost: api.example.com:8443\r\n"));
}

#[test]
fn a_canonical_head_splits_into_the_fields_httparse_finds() {
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1: two\r\nset-cookie: s=1; Path=/\r\n\r\n";
    let Parsed::Head(h) = parse_response(head) else {
        panic!("a complete head")
    };
    assert!(h.copy.is_some(), "the head is canonical");
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(head).unwrap();
    let by_httparse: Vec<(&[u8], &[u8])> = parsed
        .headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    let split: Vec<(&[u8], &[u8])> = canonical_fields(head).collect();
    assert_eq!(split, by_httparse);
    assert_eq!(split.len(), 3);
    assert_eq!(
        canonical_fields(b"HTTP/1.1 204 No Content\r\n\r\n").count(),
        0
    );
}

#[test]
fn response_fields_leave_out_hop_by_hop_and_connection_named_ones() {
    let msg = Bytes::from_static(
        b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=5\r\nx-secret: 1\r\nset-cookie: sid=9\r\nx-kept: 2\r\n\r\n",
    );
    let mut map = http::HeaderMap::new();
    let sets = copy_fields(
        &mut map,
        canonical_fields(&msg),
        &[b"X-Secret".as_slice()],
        &msg,
        Some("sid"),
    )
    .unwrap();
    assert!(sets, "the target set the application cookie");
    assert_eq!(map.len(), 2);
    assert_eq!(map["set-cookie"], "sid=9");
    assert_eq!(map["x-kept"], "2");
}

/// Many HTTP/2 streams wait for their targets at once: while a target has not answered,
/// its request holds no read buffer; the head is read into a pooled one when it comes.
#[tokio::test]
async fn a_request_waiting_for_its_target_holds_no_read_buffer() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut target, _) = listener.accept().await.unwrap();
    let mut conn = UpConn::Plain(client);
    let mut up = BytesMut::new();
    let request = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n";
    {
        let exchange = exchange_head(&mut conn, request, &mut up);
        tokio::pin!(exchange);
        let mut got = [0u8; 64];
        // The request goes out; the response has not come.
        let sent = tokio::select! {
            _ = &mut exchange => panic!("no response was sent"),
            n = target.read(&mut got) => n.unwrap(),
        };
        assert_eq!(&got[..sent], request);
        assert!(
            futures::poll!(exchange.as_mut()).is_pending(),
            "still waiting for the target"
        );
    }
    assert_eq!(up.capacity(), 0, "a waiting request holds no buffer");
    let exchange = exchange_head(&mut conn, b"", &mut up);
    target
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi")
        .await
        .unwrap();
    let head = exchange.await.expect("a response head");
    assert_eq!(head.status, 200);
    assert_eq!(&up[head.len..], b"hi");
}
