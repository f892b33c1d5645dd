//! The service mesh's outbound side: client-alias listeners ([`MeshListener`]) and what
//! mesh target groups ([`MeshGroupSettings`]) add to a target group.
//!
//! A mesh listener is compiled into the proxy's own listener and rule forms
//! ([`listeners`]): an HTTP listener whose rules send each alias (by host, port stripped,
//! case-insensitive) to its endpoint's target group and answer 404 to any other host,
//! or a TCP listener forwarding to its one endpoint. So the HTTP/1.1 fast path, the
//! hyper path, the stream path and the request engine serve mesh requests as they serve
//! load balancer requests; each adds only what a mesh group asks for, behind one check
//! of [`GroupRuntime::mesh`](crate::group::GroupRuntime::mesh):
//! - a deadline per request from its arrival to the response head (504 when it runs out),
//! - one more try on another target after a 503 response or an HTTP/2 refused stream
//!   ([`crate::attempt`] decides, within the group's retry budget and attempt limit),
//! - outlier detection ([`outlier`]): a run of 5xx responses or connection failures
//!   ejects a target for a while, within the group's ejection cap,
//! - the `berth_mesh_*` metrics ([`metrics`]).
//!
//! With mutual TLS configured ([`MeshTlsConfig`]), a mesh target that has a hop is
//! reached through its node's inbound listener ([`hop`]), and this node's inbound
//! listener ([`inbound`]) serves the endpoints running here.
//!
//! Layout, from the top down (as in the crate root: a module uses only those below):
//! - `listeners`: mesh listeners compiled into planned listeners, and `inbound`: the
//!   inbound listener (both used by the crate root only).
//! - `outlier`: outlier detection (used by the request engine).
//! - `endpoint`: the settings a mesh group carries ([`MeshGroup`]); `metrics`: its
//!   metrics (both used by target groups and below).
//! - `hop`: connections to a target through its node's inbound listener (used by the
//!   upstream pool).
//!
//! What it does not do: decide which tasks are endpoints or which aliases a node serves
//! (the control plane does), answer DNS, or issue certificates.
//!
//! [`MeshListener`]: berth_model::dataplane::MeshListener
//! [`MeshGroupSettings`]: berth_model::dataplane::MeshGroupSettings
//! [`MeshTlsConfig`]: berth_model::dataplane::MeshTlsConfig

pub(crate) mod endpoint;
pub(crate) mod hop;
pub(crate) mod inbound;
pub(crate) mod listeners;
pub(crate) mod metrics;
pub(crate) mod outlier;

pub(crate) use self::endpoint::MeshGroup;
pub(crate) use self::metrics::{MeshConnection, MeshMetrics, MeshMetricsFamilies};
