//! The proxy's error type.

use std::net::SocketAddr;

/// Why [`crate::Proxy::apply`] refused a configuration. A refused configuration changes
/// nothing: the previous one keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A load balancer, listener or target group failed model validation.
    #[error("invalid {resource} {name:?}: {source}")]
    Invalid {
        /// `load balancer` or `target group`.
        resource: &'static str,
        name: String,
        #[source]
        source: berth_model::ValidationError,
    },
    /// The configuration is consistent with the model but not with itself, e.g. an action
    /// names a target group that is not in the configuration.
    #[error("{what}: {message}")]
    Config { what: String, message: String },
    /// The data plane's worker threads could not start
    /// ([`crate::ProxyOptions::data_plane_threads`]).
    #[error("data plane threads could not start: {0}")]
    Workers(#[source] std::io::Error),
    /// A listener's port could not be bound.
    #[error("listener {listener_arn} could not bind {addr}: {source}")]
    Bind {
        listener_arn: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The listener's protocol is not served by this proxy yet.
    #[error("listener {listener_arn}: protocol {protocol} is not supported")]
    Unsupported {
        listener_arn: String,
        protocol: &'static str,
    },
    /// A mesh listener's port could not be bound on one of the node's mesh addresses.
    #[error("mesh listener on port {port} could not bind {addr}: {source}")]
    MeshBind {
        port: u16,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A mesh listener is not consistent with the rest of the configuration, e.g. a
    /// route names a target group that is not in it or is not a mesh group.
    #[error("mesh listener on port {port}: {message}")]
    Mesh { port: u16, message: String },
    /// The mesh's mutual TLS configuration (`meshTls`) does not load: its trust or one
    /// of its identities.
    #[error("meshTls: {source}")]
    MeshTls {
        #[source]
        source: crate::mesh_tls::MeshTlsError,
    },
    /// The node's inbound mesh listener could not bind.
    #[error("mesh inbound listener could not bind {addr}: {source}")]
    MeshInboundBind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The proxy was shut down.
    #[error("the proxy is shut down")]
    ShutDown,
}

impl ProxyError {
    pub(crate) fn config(what: impl Into<String>, message: impl Into<String>) -> Self {
        ProxyError::Config {
            what: what.into(),
            message: message.into(),
        }
    }
}
