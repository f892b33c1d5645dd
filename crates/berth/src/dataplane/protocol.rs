//! What crosses the data plane's unix socket: JSON bodies over HTTP/1.1, one request
//! per connection, and the client side of it ([`call`]).
//!
//! Routes (all under `/v1`):
//! - `GET /v1/identity` → [`Identity`]
//! - `PUT /v1/config` with a `ProxyConfig` → 200 [`Applied`], or 409 with a
//!   `ConfigRefusal` (the previous configuration keeps serving), 400 on a body that
//!   does not parse
//! - `GET /v1/statuses?after=G&waitMs=N` → [`Statuses`], answered once the status
//!   generation differs from `G` or after `N` ms (at most 30 s), whichever comes first
//! - `GET /v1/metrics` → the proxy's and the DNS server's metric families
//!   ([`super::metric_families`])
//! - `PUT /v1/discovery-records` with `DiscoveryRecords` → 204 once they answer, 400 on
//!   a body that does not parse (from protocol 2: [`super::dns`])
//! - `POST /v1/stop` → 202; the process stops accepting, drains and exits
//! - `POST /v1/handover` with a `HandoverRequest` → 200 `HandedOver` once the process
//!   listening on the request's socket serves this data plane's listeners (see
//!   [`super::handover`]); this one then drains and exits. 500 when the handover
//!   failed (this one serves on), 409 while it is stopping. Protocol 2 and later.
//!
//! Versioning: [`PROTOCOL_VERSION`] is reported in the identity; fields added later get
//! serde defaults and unknown fields are ignored, so a server and a data plane of
//! different berth versions understand each other.
//!
//! What it does not do: authenticate. The socket file is 0600: whoever may open it is
//! the data dir's owner.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use berth_control::data_plane::BoundAddresses;
use berth_model::dataplane::TargetStatus;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::DataPlaneOptions;

/// The socket protocol's version; a data plane answers every version up to its own.
/// 2: the discovery DNS ([`super::dns::DNS_PROTOCOL`]) and the handover
/// (`POST /v1/handover`).
pub const PROTOCOL_VERSION: u32 = 2;

/// Who answers on the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default)]
    pub protocol: u32,
    pub pid: u32,
    /// The berth version of the data plane's binary.
    pub version: String,
    pub options: DataPlaneOptions,
    /// The bound address of the mesh inbound listener (its port resolved).
    pub mesh_inbound: SocketAddr,
    /// The addresses the discovery DNS answers on (ports resolved; empty before
    /// protocol 2, or when none could be bound).
    #[serde(default)]
    pub dns_addrs: Vec<SocketAddr>,
    /// The fingerprint of the data plane's executable ([`super::executable`]); absent
    /// from data planes before protocol 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
}

/// The answer to an applied configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub bound: BoundAddresses,
    /// The target statuses right after the configuration took effect.
    #[serde(default)]
    pub statuses: Option<Statuses>,
}

/// The target statuses and the generation they are of: the generation changes whenever
/// a status does (health transition, drained, target added or removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statuses {
    pub generation: u64,
    pub statuses: Vec<TargetStatus>,
}

/// An error answer's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Why a call did not get an answer: the data plane is not there (nothing listens, the
/// connection broke) or answered something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the data plane does not answer on {socket}: {source}")]
    Unreachable {
        socket: String,
        source: anyhow::Error,
    },
    #[error("the data plane answered {status}: {body}")]
    Status { status: StatusCode, body: String },
}

/// Sends one request to the data plane on `socket` and returns the answer's status and
/// body, or fails after `timeout`.
pub async fn call(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), CallError> {
    let unreachable = |source: anyhow::Error| CallError::Unreachable {
        socket: socket.display().to_string(),
        source,
    };
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .context("connecting")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "dataplane");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building the request")?;
        let resp = sender.send_request(req).await.context("sending")?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        Ok::<_, anyhow::Error>((status, bytes))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(unreachable(e)),
        Err(_) => Err(unreachable(anyhow!("no answer within {timeout:?}"))),
    }
}

/// [`call`] expecting 2xx and a JSON body of type `T`.
pub async fn call_json<T: serde::de::DeserializeOwned>(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<T, CallError> {
    let (status, bytes) = call(socket, method, path, body, timeout).await?;
    if !status.is_success() {
        return Err(CallError::Status {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| CallError::Status {
        status,
        body: format!("an answer that does not parse: {e}"),
    })
}

/// The identity of the data plane answering on `socket`.
pub async fn identity(socket: &Path, timeout: Duration) -> Result<Identity, CallError> {
    call_json(socket, Method::GET, "/v1/identity", None, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_older_and_newer_data_planes_parse() {
        // An older data plane: no protocol version, no statuses with an apply's answer.
        let identity: Identity = serde_json::from_str(
            r#"{"pid": 7, "version": "0.0.9", "meshInbound": "127.0.0.1:15443",
                "options": {"listenIp": "0.0.0.0", "meshInboundAddr": "0.0.0.0:15443"}}"#,
        )
        .unwrap();
        assert_eq!(identity.protocol, 0);
        assert_eq!(identity.executable, None);
        assert!(identity.options.mesh_ips.is_empty());
        assert!(identity.dns_addrs.is_empty());
        assert_eq!(
            identity.options.dns,
            super::super::dns::DataPlaneDnsOptions::default()
        );
        assert!(super::super::dns::missing_from(&identity).is_some());
        let applied: Applied = serde_json::from_str(r#"{"bound": {}}"#).unwrap();
        assert_eq!(applied.statuses, None);
        // A newer one: fields this version does not know are ignored.
        let identity: Identity = serde_json::from_str(
            r#"{"protocol": 2, "pid": 7, "version": "9.0.0", "meshInbound": "127.0.0.1:1",
                "options": {"listenIp": "127.0.0.1", "meshIps": [], "meshInboundAddr": "127.0.0.1:0",
                            "somethingNew": true},
                "handover": {"socket": "x"}}"#,
        )
        .unwrap();
        assert_eq!(identity.protocol, 2);
        assert!(super::super::dns::missing_from(&identity).is_none());
        let statuses: Statuses =
            serde_json::from_str(r#"{"generation": 3, "statuses": [], "draining": false}"#)
                .unwrap();
        assert_eq!(statuses.generation, 3);
    }
}
