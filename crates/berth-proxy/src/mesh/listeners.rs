//! Mesh listeners compiled into the proxy's listener and rule forms: one planned
//! listener per client-alias port and mesh address, routing by host (HTTP) or to the
//! port's one endpoint (TCP). Pure: it binds nothing.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_model::dataplane::{MeshListener, MeshProtocol};
use http::StatusCode;

use crate::context::{Mode, Routes};
use crate::elb_error;
use crate::error::ProxyError;
use crate::forwarded::XffMode;
use crate::group::GroupRuntime;
use crate::rules::{CompiledAction, RuleSet};
use crate::{PlannedListener, DEFAULT_MAX_CONNECTIONS};

/// The `load_balancer` label of mesh listeners' listener metrics.
pub(crate) const MESH_LB_NAME: &str = "mesh";

/// An idle timeout of 0 means none: a year stands in for "never".
const NO_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The key a mesh listener on `port` bound on `ip` has among the proxy's listeners (and
/// in what [`crate::Proxy::apply`] returns): `mesh:<port>@<ip>`.
pub fn mesh_listener_key(port: u16, ip: IpAddr) -> String {
    format!("mesh:{port}@{ip}")
}

/// Compiles `listeners`, one planned listener per listener and address of `ips`.
/// `group` finds a target group of the configuration by ARN.
pub(crate) fn plan(
    listeners: &[MeshListener],
    ips: &[IpAddr],
    group: &dyn Fn(&str) -> Option<Arc<GroupRuntime>>,
) -> Result<Vec<PlannedListener>, ProxyError> {
    let mut ports = HashSet::new();
    let mut out = Vec::with_capacity(listeners.len() * ips.len());
    for l in listeners {
        let bad = |message: String| ProxyError::Mesh {
            port: l.port,
            message,
        };
        if !ports.insert(l.port) {
            return Err(bad("the port is listed twice".into()));
        }
        let mut routes = Vec::with_capacity(l.routes.len());
        let mut names = HashSet::new();
        for r in &l.routes {
            let name = r.dns_name.to_ascii_lowercase();
            if name.is_empty() {
                return Err(bad("a route's dnsName must not be empty".into()));
            }
            if !names.insert(name.clone()) {
                return Err(bad(format!("dnsName {name:?} is listed twice")));
            }
            let g = group(&r.target_group_arn).ok_or_else(|| {
                bad(format!(
                    "route {name}: target group {:?} is not in the configuration",
                    r.target_group_arn
                ))
            })?;
            if g.mesh.is_none() {
                return Err(bad(format!(
                    "route {name}: target group {:?} is not a mesh target group (mesh is not set)",
                    r.target_group_arn
                )));
            }
            routes.push((name, g));
        }
        let mode = match l.protocol {
            MeshProtocol::Http if routes.is_empty() => {
                return Err(bad("an HTTP mesh listener needs at least one route".into()))
            }
            MeshProtocol::Http => Mode::Http,
            MeshProtocol::Tcp if routes.len() != 1 => {
                return Err(bad(format!(
                    "a TCP mesh listener needs exactly one route, got {}",
                    routes.len()
                )))
            }
            MeshProtocol::Tcp => Mode::Stream,
        };
        let idle_timeout = match l.idle_timeout_seconds {
            0 => NO_IDLE_TIMEOUT,
            s => Duration::from_secs(u64::from(s)),
        };
        for &ip in ips {
            let rules = match mode {
                Mode::Http => RuleSet::by_host(
                    routes.iter().map(|(n, g)| (n.as_str(), g.clone())),
                    not_found(),
                ),
                Mode::Stream => RuleSet::forward_all(routes[0].1.clone()),
            };
            let key = mesh_listener_key(l.port, ip);
            out.push(PlannedListener {
                arn: key,
                lb_name: MESH_LB_NAME.to_string(),
                port: u32::from(l.port),
                ip,
                mesh_port: Some(l.port),
                mode,
                tls: None,
                routes: Routes {
                    rules,
                    xff: XffMode::Append,
                    drop_invalid_headers: false,
                    idle_timeout,
                    stream_idle_timeout: (mode == Mode::Stream && l.idle_timeout_seconds > 0)
                        .then_some(idle_timeout),
                    max_connections: DEFAULT_MAX_CONNECTIONS,
                    // A task's connection pool is one client address.
                    max_connections_per_client: u32::MAX,
                    header_timeout: crate::DEFAULT_HEADER_TIMEOUT,
                },
            });
        }
    }
    Ok(out)
}

/// What a request for a host no alias of the port names gets.
fn not_found() -> CompiledAction {
    CompiledAction::Fixed {
        status: StatusCode::NOT_FOUND,
        content_type: Some(http::HeaderValue::from_static("text/html")),
        body: elb_error::body(StatusCode::NOT_FOUND).into(),
    }
}
