//! An agent's connection to its control plane: one HTTP/2 connection over TLS, made on
//! first use and made again after it breaks, carrying every call of the link as a
//! stream of its own.
//!
//! What it does not do: retry a call (callers converge on their own timers) or decide
//! what to trust (its TLS configuration comes from [`crate::tls`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

/// How long connecting (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call (not a stream) may take to answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call over the link failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The control plane could not be reached, or the connection broke.
    #[error("cannot reach the control plane at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The control plane answered with an error status.
    #[error("the control plane answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// The answer was not what the link expects.
    #[error("the control plane's answer does not decode: {0}")]
    Decode(String),
}

impl LinkError {
    /// The status of a refusal, `None` for other failures.
    pub fn status(&self) -> Option<u16> {
        match self {
            LinkError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The address (`host:port`) of an `https://host:port` URL.
pub fn server_addr(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("--server {url:?}: not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "--server {url:?}: must start with https:// (the node link is always TLS)"
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("--server {url:?}: names no host"))?;
    let port = uri.port_u16().unwrap_or(7071);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// One lazily (re)made HTTP/2 connection to the control plane.
pub struct ControlChannel {
    addr: String,
    tls: ArcSwap<ClientConfig>,
    sender: Mutex<Option<SendRequest<ChannelBody>>>,
}

/// A request body on the channel: whole (a call) or streaming (an exec session's input).
pub type ChannelBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

impl ControlChannel {
    pub fn new(addr: String, tls: Arc<ClientConfig>) -> Self {
        Self {
            addr,
            tls: ArcSwap::new(tls),
            sender: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Uses `tls` for the next connection and drops the current one.
    pub async fn replace_tls(&self, tls: Arc<ClientConfig>) {
        self.tls.store(tls);
        *self.sender.lock().await = None;
    }

    fn unreachable(&self, reason: impl std::fmt::Display) -> LinkError {
        LinkError::Unreachable {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }

    async fn connect(&self) -> Result<SendRequest<ChannelBody>, LinkError> {
        let tls = self.tls.load_full();
        let connecting = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|e| self.unreachable(e))?;
            let _ = tcp.set_nodelay(true);
            // The verifier checks the authority and the control identity, not this name.
            let name = ServerName::try_from("berth-control").expect("a valid DNS name");
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| self.unreachable(e))?;
            let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true)
                .handshake(TokioIo::new(stream))
                .await
                .map_err(|e| self.unreachable(e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "node link connection ended");
                }
            });
            Ok(sender)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| self.unreachable("timed out connecting"))?
    }

    /// Sends `req` on the current connection (made first when there is none or it
    /// broke) and returns the response head with its body still streaming.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, LinkError> {
        self.send_streaming(req.map(|b| b.boxed_unsync())).await
    }

    /// [`ControlChannel::send`] with a body that may still be streaming.
    pub async fn send_streaming(
        &self,
        req: Request<ChannelBody>,
    ) -> Result<hyper::Response<Incoming>, LinkError> {
        let mut sender = {
            let mut slot = self.sender.lock().await;
            match slot.as_ref() {
                Some(s) if !s.is_closed() => s.clone(),
                _ => {
                    let s = self.connect().await?;
                    *slot = Some(s.clone());
                    s
                }
            }
        };
        sender.ready().await.map_err(|e| self.unreachable(e))?;
        match sender.send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                *self.sender.lock().await = None;
                Err(self.unreachable(e))
            }
        }
    }

    /// A JSON call: `body` as JSON (none for GET), the answer decoded; `None` on 404.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
    ) -> Result<Option<R>, LinkError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| LinkError::Decode(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(format!("https://{}{path_and_query}", self.addr))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| LinkError::Decode(e.to_string()))?;
        let call = async {
            let resp = self.send(req).await?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_bytes();
            Ok::<_, LinkError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| self.unreachable("the call timed out"))??;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(LinkError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| LinkError::Decode(e.to_string()))
    }
}

/// Percent-encodes what a query value may not hold as is (ARNs carry `:` and `/`, which
/// are allowed; `+`, `&`, `#`, `%` and spaces are not).
pub(crate) fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_give_their_address_and_must_be_https() {
        assert_eq!(
            server_addr("https://10.0.0.1:7071").unwrap(),
            "10.0.0.1:7071"
        );
        assert_eq!(
            server_addr("https://berth.local").unwrap(),
            "berth.local:7071"
        );
        assert_eq!(server_addr("https://[::1]:9").unwrap(), "[::1]:9");
        let e = server_addr("http://10.0.0.1:7071").unwrap_err();
        assert!(e.contains("https://"), "{e}");
    }

    #[test]
    fn query_values_keep_arns_and_encode_the_rest() {
        assert_eq!(
            encode_query_value("arn:berth:ecs:x:1:task/default/ab"),
            "arn:berth:ecs:x:1:task/default/ab"
        );
        assert_eq!(encode_query_value("a b&c+%"), "a%20b%26c%2B%25");
    }
}
