//! berth-iam's SigV4 parsing and verification from arbitrary request parts: the
//! `Authorization` header's parser, the canonical URI, query and request, the request
//! date and `verify` never panic; and a request berth signs itself (a host, header
//! names that are HTTP tokens, any values) parses back and verifies at its signing time.
//!
//! The input is text, one part a line: the Authorization value, the method, the path,
//! the query, the X-Amz-Date value, the payload hash, then headers as `name:value`.
#![no_main]

use berth_iam::sigv4::{self, Request, SigningParams};
use libfuzzer_sys::fuzz_target;

/// Unix seconds of 2100-01-01: signing times are kept between the epoch and then.
const LATEST: i64 = 4_102_444_800;

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("");
    let (authorization, method, path, query, amz_date, payload_hash) =
        (next(), next(), next(), next(), next(), next());
    let headers: Vec<(&str, &str)> = lines
        .map(|l| l.split_once(':').unwrap_or((l, "")))
        .collect();
    let req = Request {
        method,
        path,
        query,
        headers: &headers,
        payload_hash,
    };
    let now = berth_iam::time::parse_amz_date(amz_date).unwrap_or(1_700_000_000);
    let _ = sigv4::canonical_uri(path);
    let _ = sigv4::canonical_query(query);
    let _ = sigv4::request_date(&req, authorization);
    if let Ok(auth) = sigv4::parse_authorization(authorization) {
        let _ = auth.scope();
        let _ = sigv4::canonical_request(&req, &auth.signed_headers);
        let _ = sigv4::verify(&req, &auth, amz_date, "secret", now);
    }

    // What berth signs, berth verifies.
    let mut own: Vec<(&str, &str)> = headers
        .iter()
        .copied()
        .filter(|(n, _)| is_token(n) && !n.eq_ignore_ascii_case("x-amz-date"))
        .collect();
    // `sign` wants the host among the headers, as every client sends it.
    if !own.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        own.push(("host", "fuzz.example"));
    }
    let time = now.clamp(0, LATEST);
    let unsigned = Request {
        headers: &own,
        ..req
    };
    let params = SigningParams {
        access_key_id: "AKIDFUZZ",
        secret_access_key: "secret",
        region: "eu-west-1",
        service: "ecs",
        time,
    };
    let signature = sigv4::sign(&unsigned, &params);
    let auth = sigv4::parse_authorization(&signature.authorization)
        .expect("berth's own Authorization header parses");
    let mut signed = own.clone();
    signed.push(("x-amz-date", &signature.amz_date));
    let with_date = Request {
        headers: &signed,
        ..req
    };
    if let Err(e) = sigv4::verify(&with_date, &auth, &signature.amz_date, "secret", time) {
        panic!("berth's own signature does not verify: {e:?} ({signature:?})");
    }
});
