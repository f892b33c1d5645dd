//! The CLI's credentials inside a task whose definition names a role: read from the
//! container credential endpoint its node serves, as the AWS SDKs' container credential
//! provider reads it.
//!
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (or `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//! under `http://169.254.170.2`) names the endpoint; the `Authorization` header is the
//! contents of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, else
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`. The answer's `AccessKeyId`, `SecretAccessKey`
//! and `Token` become the credentials; a command runs for seconds, well inside their
//! validity, so they are read once per command.
//!
//! What it does not do: https (the endpoint is a node-local `http` address; a URI of
//! another scheme is refused, naming the variable), or retry a failed read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A role session's credentials, as the endpoint answers them.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Sent as `X-Amz-Security-Token`.
    pub session_token: String,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SessionCredentials({}, <secret hidden>)",
            self.access_key_id
        )
    }
}

/// The address the relative URI is read from, as the SDKs do.
const RELATIVE_BASE: &str = "http://169.254.170.2";
/// How long one read of the endpoint may take (the SDKs allow 2 s per attempt).
const TIMEOUT: Duration = Duration::from_secs(5);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The credentials of the container credential endpoint the environment names; `None`
/// when it names none.
pub fn from_environment() -> Result<Option<SessionCredentials>> {
    let (uri, variable) = match (
        env("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    ) {
        (Some(full), _) => (full, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        (None, Some(relative)) => (
            format!("{RELATIVE_BASE}{relative}"),
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ),
        (None, None) => return Ok(None),
    };
    let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: reading {path}"))?
                .trim()
                .to_string(),
        ),
        None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    fetch(&uri, token.as_deref())
        .with_context(|| format!("reading task role credentials from {variable} ({uri})"))
        .map(Some)
}

/// `host:port` and the path of an `http` URI.
fn split_http_uri(uri: &str) -> Result<(String, String)> {
    let Some(rest) = uri.strip_prefix("http://") else {
        bail!("only http:// URIs are read, got {uri:?}");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("no host in {uri:?}");
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// Reads the credentials at `uri` with `token` as its `Authorization`.
pub fn fetch(uri: &str, token: Option<&str>) -> Result<SessionCredentials> {
    let (authority, path) = split_http_uri(uri)?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&authority)
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some(t) = token {
        if t.contains(['\r', '\n']) {
            bail!("the authorization token holds a line break");
        }
        request.push_str(&format!("Authorization: {t}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the endpoint's answer has no header end")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the endpoint's answer has no status")?;
    if status != 200 {
        bail!("the endpoint answered {status}: {}", body.trim());
    }
    let v: Value = serde_json::from_str(body.trim()).context("the endpoint's answer")?;
    let field = |name: &str| {
        v[name]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("the endpoint's answer has no {name}"))
    };
    Ok(SessionCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: field("Token")?,
    })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A one-request server answering `status` and `body`; returns its URL and the
    /// request it received.
    fn serve_once(status: u16, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/v2/credentials/abc",
            listener.local_addr().unwrap()
        );
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn credentials_are_read_with_the_token() {
        let (url, server) = serve_once(
            200,
            r#"{"AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z","RoleArn":"r"}"#,
        );
        let c = fetch(&url, Some("tok")).unwrap();
        assert_eq!(c.access_key_id, "ASIAX");
        assert_eq!(c.session_token, "t");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v2/credentials/abc HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nAuthorization: tok\r\n"), "{request}");
    }

    #[test]
    fn a_refusal_or_another_scheme_is_an_error() {
        let (url, server) = serve_once(403, r#"{"code":"InvalidAuthorization"}"#);
        let e = fetch(&url, Some("wrong")).unwrap_err().to_string();
        assert!(e.contains("answered 403"), "{e}");
        server.join().unwrap();
        let e = fetch("https://169.254.170.2/creds", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only http://"), "{e}");
        assert_eq!(
            split_http_uri("http://169.254.170.2/v2/x").unwrap(),
            ("169.254.170.2:80".to_string(), "/v2/x".to_string())
        );
    }
}
