use super::*;

#[test]
fn request_head_is_http11_with_every_header() {
    let (mut parts, ()) = http::Request::get("/a/b?x=1")
        .header("host", "example.com")
        .header("x-forwarded-for", "10.0.0.1")
        .header("accept", "*/*")
        .body(())
        .unwrap()
        .into_parts();
    let mut out = Vec::new();
    write_request(&mut out, &parts);
    assert_eq!(
        out,
        b"GET /a/b?x=1 HTTP/1.1\r\nhost: example.com\r\nx-forwarded-for: 10.0.0.1\r\naccept: */*\r\n\r\n"
    );
    parts.method = http::Method::HEAD;
    parts.uri = http::Uri::from_static("/");
    parts.headers.clear();
    write_request(&mut out, &parts);
    assert_eq!(out, b"HEAD / HTTP/1.1\r\n\r\n");
}
