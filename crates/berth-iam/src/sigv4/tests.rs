//! Vectors from AWS's published SigV4 test suite (`get-vanilla`,
//! `get-vanilla-query-order-key-case`, `post-vanilla`; AKIDEXAMPLE, 2015-08-30T12:36:00Z,
//! us-east-1, service `service`) and the S3 API reference's "GET Object" example, then
//! round trips through [`sign`] and [`verify`].

use super::*;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SUITE_TIME: i64 = 1_440_938_160; // 20150830T123600Z

fn suite(method: &str, query: &str) -> Signature {
    let headers = [("Host", "example.amazonaws.com")];
    let req = Request {
        method,
        path: "/",
        query,
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    sign(
        &req,
        &SigningParams {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SUITE_SECRET,
            region: "us-east-1",
            service: "service",
            time: SUITE_TIME,
        },
    )
}

#[test]
fn get_vanilla_matches_the_suite() {
    let s = suite("GET", "");
    assert_eq!(s.amz_date, "20150830T123600Z");
    assert_eq!(
        s.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn get_vanilla_string_to_sign_matches_the_suite() {
    let headers = [
        ("host", "example.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
    ];
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let signed = vec!["host".to_string(), "x-amz-date".to_string()];
    let canonical = canonical_request(&req, &signed);
    assert_eq!(
        canonical,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &canonical
        ),
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
}

#[test]
fn query_order_and_post_match_the_suite() {
    assert!(suite("GET", "Param2=value2&Param1=value1")
        .authorization
        .ends_with("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
    assert!(suite("POST", "")
        .authorization
        .ends_with("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
}

#[test]
fn s3_get_object_example_matches_the_reference() {
    let headers = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
    ];
    let req = Request {
        method: "GET",
        path: "/test.txt",
        query: "",
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let s = sign(
        &req,
        &SigningParams {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "s3",
            time: 1_369_353_600, // 20130524T000000Z
        },
    );
    assert!(
        s.authorization.ends_with(
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ),
        "{}",
        s.authorization
    );
}

#[test]
fn paths_are_normalised_and_encoded_and_queries_sorted() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/./"), "/");
    assert_eq!(canonical_uri("//example//"), "/example/");
    assert_eq!(canonical_uri("/example1/example2/../.."), "/");
    assert_eq!(canonical_uri("/example space/"), "/example%20space/");
    assert_eq!(canonical_uri("/\u{1234}"), "/%E1%88%B4");
    // A path already percent-encoded is encoded once more, as botocore does.
    assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
    assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
    assert_eq!(canonical_query("k=a%2Fb&e"), "e=&k=a%2Fb");
    assert_eq!(canonical_query("k=a b~"), "k=a%20b~");
}

struct Fixture {
    headers: Vec<(String, String)>,
    body_hash: String,
}

fn signed_request(secret: &str, time: i64, body: &[u8]) -> Fixture {
    let body_hash = sha256_hex(body);
    let base = [
        ("host", "127.0.0.1:7070"),
        ("content-type", "application/json"),
        ("x-amz-content-sha256", body_hash.as_str()),
    ];
    let req = Request {
        method: "PUT",
        path: "/v1/clusters/default/services/web",
        query: "dryRun=true",
        headers: &base,
        payload_hash: &body_hash,
    };
    let s = sign(
        &req,
        &SigningParams {
            access_key_id: "AKIAEXAMPLEEXAMPLE00",
            secret_access_key: secret,
            region: "local",
            service: "ecs",
            time,
        },
    );
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    headers.push(("x-amz-date".into(), s.amz_date));
    headers.push(("authorization".into(), s.authorization));
    Fixture { headers, body_hash }
}

fn check(f: &Fixture, path: &str, secret: &str, now: i64) -> Result<(), AuthError> {
    let headers: Vec<(&str, &str)> = f
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: "PUT",
        path,
        query: "dryRun=true",
        headers: &headers,
        payload_hash: &f.body_hash,
    };
    let header = &f
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1;
    let auth = parse_authorization(header)?;
    let date = request_date(&req, header)?;
    verify(&req, &auth, date, secret, now)
}

#[test]
fn a_signed_request_verifies_and_a_changed_one_does_not() {
    let t = 1_800_000_000;
    let f = signed_request("s3cr3t", t, b"{\"a\":1}");
    assert_eq!(
        check(&f, "/v1/clusters/default/services/web", "s3cr3t", t),
        Ok(())
    );
    // Within the window either way.
    assert_eq!(
        check(&f, "/v1/clusters/default/services/web", "s3cr3t", t + 299),
        Ok(())
    );
    assert_eq!(
        check(&f, "/v1/clusters/default/services/web", "s3cr3t", t - 299),
        Ok(())
    );
    let wrong = check(&f, "/v1/clusters/default/services/web", "other", t).unwrap_err();
    assert_eq!(wrong.code(), "SignatureDoesNotMatch");
    assert_eq!(wrong.message(), SIGNATURE_MISMATCH_MESSAGE);
    let moved = check(&f, "/v1/clusters/default/services/api", "s3cr3t", t).unwrap_err();
    assert_eq!(moved.code(), "SignatureDoesNotMatch");
    let mut tampered = signed_request("s3cr3t", t, b"{\"a\":1}");
    tampered.body_hash = sha256_hex(b"{\"a\":2}");
    assert_eq!(
        check(&tampered, "/v1/clusters/default/services/web", "s3cr3t", t)
            .unwrap_err()
            .code(),
        "SignatureDoesNotMatch"
    );
}

#[test]
fn a_request_outside_the_clock_window_is_refused_with_aws_wording() {
    let t = 1_800_000_000;
    let f = signed_request("s3cr3t", t, b"");
    let late = check(&f, "/v1/clusters/default/services/web", "s3cr3t", t + 301).unwrap_err();
    assert_eq!(late.code(), "SignatureDoesNotMatch");
    assert!(
        late.message().starts_with(&format!(
            "Signature expired: {} is now earlier than",
            amz_date(t)
        )),
        "{}",
        late.message()
    );
    assert!(late.message().ends_with(" - 5 min.)"), "{}", late.message());
    let early = check(&f, "/v1/clusters/default/services/web", "s3cr3t", t - 301).unwrap_err();
    assert!(
        early.message().starts_with("Signature not yet current:"),
        "{}",
        early.message()
    );
}

#[test]
fn authorization_headers_missing_parts_are_incomplete() {
    let e = parse_authorization("Basic dXNlcjpwYXNz").unwrap_err();
    assert_eq!(e.code(), "IncompleteSignature");
    assert!(
        e.message()
            .contains("Authorization header requires 'Credential' parameter."),
        "{}",
        e.message()
    );
    let e = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKIAX/20150830/us-east-1/service/aws4_request, SignedHeaders=host",
    )
    .unwrap_err();
    assert!(
        e.message()
            .starts_with("Authorization header requires 'Signature' parameter."),
        "{}",
        e.message()
    );
    let a = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKIAX/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=ABCD",
    )
    .unwrap();
    assert_eq!(a.access_key_id, "AKIAX");
    assert_eq!(a.scope(), "20150830/us-east-1/service/aws4_request");
    assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
    assert_eq!(a.signature, "abcd");
}

#[test]
fn host_and_date_must_be_signed() {
    let t = 1_800_000_000;
    let headers = [("host", "h"), ("x-amz-date", "20270115T080000Z")];
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let auth = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKIAX/20270115/local/ecs/aws4_request, SignedHeaders=x-amz-date, Signature=00",
    )
    .unwrap();
    let e = verify(&req, &auth, "20270115T080000Z", "s", t).unwrap_err();
    assert_eq!(
        e.message(),
        "'host' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn signing_headers_verify_as_sent() {
    let t = 1_800_000_000;
    let params = SigningParams {
        access_key_id: "AKIAEXAMPLEEXAMPLE00",
        secret_access_key: "s3cr3t",
        region: "local",
        service: "ecs",
        time: t,
    };
    let body = b"{}";
    let added = signing_headers(
        "POST",
        "/",
        "",
        "127.0.0.1:9",
        &[(
            "x-amz-target",
            "AmazonEC2ContainerServiceV20141113.ListClusters",
        )],
        body,
        &params,
    );
    let mut headers: Vec<(&str, &str)> = vec![
        ("Host", "127.0.0.1:9"),
        (
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.ListClusters",
        ),
        ("Content-Length", "2"),
    ];
    headers.extend(added.iter().map(|(n, v)| (*n, v.as_str())));
    let hash = sha256_hex(body);
    let req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload_hash: &hash,
    };
    let auth = parse_authorization(&added[2].1).unwrap();
    assert_eq!(
        auth.signed_headers,
        ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-target"]
    );
    assert_eq!(verify(&req, &auth, &added[1].1, "s3cr3t", t), Ok(()));
}
