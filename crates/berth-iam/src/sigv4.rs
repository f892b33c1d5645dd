//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) in the Authorization header.
//!
//! One canonical request serves both sides: [`sign`] (what the CLI sends) and [`verify`]
//! (what the server checks), so they cannot disagree. The request comes in as
//! [`Request`]: the method, the path and query as sent (still percent-encoded), the
//! headers and the payload's hash (hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`]).
//!
//! The path is normalised (`.`/`..` segments and empty segments removed, a trailing `/`
//! kept) and URI-encoded once more, as botocore does for every service but S3; the query's
//! names and values are decoded and re-encoded with the unreserved set, then sorted.

use ring::{digest, hmac};

use crate::hex;
use crate::time::{amz_date, parse_amz_date};

/// The only algorithm berth accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash a signer may send instead of hashing the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a request's `X-Amz-Date` may be from the server's clock, either way (AWS: 5
/// minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// The SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Why a request is not authenticated, with AWS's code ([`AuthError::code`]), message
/// text ([`AuthError::message`]) and HTTP status ([`AuthError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No Authorization header at all.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// An Authorization header without a part SigV4 needs.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is not known (or not active).
    #[error("The security token included in the request is invalid.")]
    InvalidClientTokenId,
    /// The signature is wrong, or the request's time is outside the window.
    #[error("{0}")]
    SignatureDoesNotMatch(String),
    /// A role session's temporary credentials past their expiration.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
}

/// AWS's message for a signature that does not verify.
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl AuthError {
    /// AWS's error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationToken",
            AuthError::IncompleteSignature(_) => "IncompleteSignature",
            AuthError::InvalidClientTokenId => "InvalidClientTokenId",
            AuthError::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            AuthError::ExpiredToken => "ExpiredTokenException",
        }
    }

    /// The code a query-protocol service (ELBv2, IAM) answers: `ExpiredToken` where the
    /// JSON services say `ExpiredTokenException`; the others are the same.
    pub fn query_code(&self) -> &'static str {
        match self {
            AuthError::ExpiredToken => "ExpiredToken",
            other => other.code(),
        }
    }

    /// AWS's message text.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The HTTP status: 403, but 400 for an expired session token as AWS's JSON services
    /// answer it ([`AuthError::query_status`] for the query protocol's).
    pub fn status(&self) -> u16 {
        match self {
            AuthError::ExpiredToken => 400,
            _ => 403,
        }
    }

    /// The HTTP status a query-protocol service answers: 403 for all of them.
    pub fn query_status(&self) -> u16 {
        403
    }
}

/// A request as SigV4 sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    /// The query as sent, without `?` (empty when there is none).
    pub query: &'a str,
    /// Every header, names in any case; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// The credential scope's date, `yyyymmdd`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase header names, as the signer listed them.
    pub signed_headers: Vec<String>,
    /// Lowercase hex.
    pub signature: String,
}

impl Authorization {
    /// `<date>/<region>/<service>/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// Reads an Authorization header's value. A header of another scheme, or one missing a
/// part, is [`AuthError::IncompleteSignature`] naming what is missing, as AWS answers.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .unwrap_or("");
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let mut missing = String::new();
    for (name, v) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed),
    ] {
        if v.is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if !missing.is_empty() {
        return Err(AuthError::IncompleteSignature(format!(
            "{missing}Authorization={value}"
        )));
    }
    let (credential, signed, signature) = (
        credential.unwrap_or_default(),
        signed.unwrap_or_default(),
        signature.unwrap_or_default(),
    );
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = parts[..] else {
        return Err(AuthError::IncompleteSignature(format!(
            "Credential should have 5 parts (<access key id>/<date>/<region>/<service>/aws4_request), got {credential:?}"
        )));
    };
    if terminator != "aws4_request" {
        return Err(AuthError::SignatureDoesNotMatch(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if akid.is_empty() {
        return Err(AuthError::IncompleteSignature(
            "Credential has an empty access key id".into(),
        ));
    }
    Ok(Authorization {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Hex SHA-256 of `bytes` (the payload hash of a body).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes every byte but the unreserved ones (and `/` when `keep_slash`).
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(hex::decode)
            {
                out.push(v[0]);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical URI: the path normalised and URI-encoded (`/` kept).
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normal = format!("/{}", segments.join("/"));
    if path.ends_with('/') && normal != "/" {
        normal.push('/');
    }
    uri_encode(normal.as_bytes(), true)
}

/// The canonical query string: each name and value decoded and re-encoded, the pairs
/// sorted by name, then value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value as SigV4 canonicalises it: trimmed, runs of spaces made one.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request of `req` over the headers named in `signed` (lowercase, in
/// the order given).
pub fn canonical_request(req: &Request<'_>, signed: &[String]) -> String {
    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| canonical_value(v))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(req.payload_hash);
    out
}

/// The string to sign: the algorithm, the request's time, the scope and the canonical
/// request's hash, one a line.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac_sign(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The derived signing key: HMAC chained over `"AWS4" + secret`, date, region, service,
/// `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let k = hmac_sign(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sign(k.as_ref(), region.as_bytes());
    let k = hmac_sign(k.as_ref(), service.as_bytes());
    let k = hmac_sign(k.as_ref(), b"aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())
}

/// What a signer needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// Unix seconds of the signing time.
    pub time: i64,
}

/// What [`sign`] adds to a request: the `X-Amz-Date` and `Authorization` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub amz_date: String,
    pub authorization: String,
}

/// Signs `req`: every header of `req.headers` (which should include `host`) plus
/// `x-amz-date` is signed. `req.headers` must not hold an `x-amz-date` of its own.
pub fn sign(req: &Request<'_>, params: &SigningParams<'_>) -> Signature {
    let date_time = amz_date(params.time);
    let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
    headers.push(("x-amz-date", &date_time));
    let mut signed: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    signed.sort();
    signed.dedup();
    let with_date = Request {
        headers: &headers,
        ..*req
    };
    let canonical = canonical_request(&with_date, &signed);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        &date_time[..8],
        params.region,
        params.service
    );
    let sts = string_to_sign(&date_time, &scope, &canonical);
    let key = signing_key(
        params.secret_access_key,
        &date_time[..8],
        params.region,
        params.service,
    );
    let signature = hex::encode(hmac::sign(&key, sts.as_bytes()).as_ref());
    Signature {
        authorization: format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            params.access_key_id,
            signed.join(";")
        ),
        amz_date: date_time,
    }
}

/// The headers a client adds to sign a request for `host` (`host:port` as the request
/// sends it) with `body`: `x-amz-content-sha256`, `x-amz-date` and `authorization`. The
/// signed headers are `host`, those two and the `extra` ones the request also sends
/// (`content-type`, `x-amz-target`, ...).
pub fn signing_headers(
    method: &str,
    path: &str,
    query: &str,
    host: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    params: &SigningParams<'_>,
) -> Vec<(&'static str, String)> {
    let payload_hash = sha256_hex(body);
    let mut headers: Vec<(&str, &str)> =
        vec![("host", host), ("x-amz-content-sha256", &payload_hash)];
    headers.extend_from_slice(extra);
    let s = sign(
        &Request {
            method,
            path,
            query,
            headers: &headers,
            payload_hash: &payload_hash,
        },
        params,
    );
    vec![
        ("x-amz-content-sha256", payload_hash.clone()),
        ("x-amz-date", s.amz_date),
        ("authorization", s.authorization),
    ]
}

/// The request's `X-Amz-Date` header, or [`AuthError::IncompleteSignature`] as AWS
/// answers without one.
pub fn request_date<'a>(req: &Request<'a>, auth_header: &str) -> Result<&'a str, AuthError> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"))
        .map(|(_, v)| v.trim())
        .ok_or_else(|| {
            AuthError::IncompleteSignature(format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={auth_header}"
            ))
        })
}

/// Verifies `req`, signed as `auth` says, against the access key's `secret` at Unix
/// second `now`: the time within [`MAX_CLOCK_SKEW_SECS`], the scope's date the
/// request's, `host` and `x-amz-date` signed, the signature equal (compared in constant
/// time). The refusals are AWS's.
pub fn verify(
    req: &Request<'_>,
    auth: &Authorization,
    amz_date_text: &str,
    secret: &str,
    now: i64,
) -> Result<(), AuthError> {
    let Some(at) = parse_amz_date(amz_date_text) else {
        return Err(AuthError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date_text}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    if at < now - MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::SignatureDoesNotMatch(format!(
            "Signature expired: {amz_date_text} is now earlier than {} ({} - 5 min.)",
            amz_date(now - MAX_CLOCK_SKEW_SECS),
            amz_date(now)
        )));
    }
    if at > now + MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::SignatureDoesNotMatch(format!(
            "Signature not yet current: {amz_date_text} is still later than {} ({} + 5 min.)",
            amz_date(now + MAX_CLOCK_SKEW_SECS),
            amz_date(now)
        )));
    }
    if auth.date != amz_date_text[..8] {
        return Err(AuthError::SignatureDoesNotMatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date_text}'.",
            auth.date,
            &amz_date_text[..8]
        )));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(AuthError::SignatureDoesNotMatch(format!(
                "'{required}' must be a 'SignedHeader' in the AWS Authorization."
            )));
        }
    }
    let canonical = canonical_request(req, &auth.signed_headers);
    let sts = string_to_sign(amz_date_text, &auth.scope(), &canonical);
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    let given = hex::decode(&auth.signature).unwrap_or_default();
    hmac::verify(&key, sts.as_bytes(), &given)
        .map_err(|_| AuthError::SignatureDoesNotMatch(SIGNATURE_MISMATCH_MESSAGE.into()))
}

#[cfg(test)]
mod tests;
