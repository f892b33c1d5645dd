//! Host ports for a task's port mappings: a process listens on the host itself, so each
//! mapping gets its `hostPort`, or with 0 or none a free port (in `host` network mode the
//! `containerPort`); a fixed port already in use fails the start. Ports are chosen, not
//! held: the process binds them once it runs.

use berth_model::ecs::{NetworkBinding, NetworkMode, TaskDefinition, TransportProtocol};

use crate::task_env::protocol_name;
use crate::{Result, RuntimeError};

/// Chooses the host port of every port mapping; fixed ports must be free.
pub(super) fn allocate_ports(td: &TaskDefinition) -> Result<Vec<Vec<NetworkBinding>>> {
    // Held until every port is chosen, so two dynamic mappings never get the same port.
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let mut out = Vec::new();
    for c in &td.container_definitions {
        let mut bindings = Vec::new();
        if td.network_mode == NetworkMode::None {
            out.push(bindings);
            continue;
        }
        for pm in &c.port_mappings {
            let fixed = match td.network_mode {
                NetworkMode::Host => pm
                    .host_port
                    .filter(|p| *p != 0)
                    .unwrap_or(pm.container_port),
                _ => pm.host_port.unwrap_or(0),
            };
            let port = u16::try_from(fixed).map_err(|_| {
                RuntimeError::StartFailed(format!(
                    "container {}: host port {fixed} is out of range",
                    c.name
                ))
            })?;
            let taken = |e: std::io::Error| {
                RuntimeError::StartFailed(format!(
                    "container {}: host port {port}/{} is already in use ({e})",
                    c.name,
                    protocol_name(pm.protocol)
                ))
            };
            let host_port = match pm.protocol {
                TransportProtocol::Tcp => {
                    let l = std::net::TcpListener::bind(("0.0.0.0", port)).map_err(taken)?;
                    let p = l.local_addr().map_err(taken)?.port();
                    held_tcp.push(l);
                    p
                }
                TransportProtocol::Udp => {
                    let s = std::net::UdpSocket::bind(("0.0.0.0", port)).map_err(taken)?;
                    let p = s.local_addr().map_err(taken)?.port();
                    held_udp.push(s);
                    p
                }
            };
            bindings.push(NetworkBinding {
                bind_ip: "0.0.0.0".into(),
                container_port: pm.container_port,
                host_port: host_port.into(),
                protocol: pm.protocol,
            });
        }
        out.push(bindings);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_port_in_use_is_refused() {
        let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "f",
            "containerDefinitions": [{
                "name": "web", "image": "x", "command": ["true"],
                "portMappings": [{"containerPort": 80, "hostPort": port}]
            }]
        }))
        .unwrap();
        let err = allocate_ports(&td).unwrap_err().to_string();
        assert!(err.contains(&format!("host port {port}/tcp")), "{err}");
        assert!(err.contains("already in use"), "{err}");
    }

    #[test]
    fn dynamic_ports_are_distinct_and_host_mode_uses_container_port() {
        let td: TaskDefinition = serde_json::from_value(serde_json::json!({
            "family": "f",
            "containerDefinitions": [{
                "name": "web", "image": "x", "command": ["true"],
                "portMappings": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}]
            }]
        }))
        .unwrap();
        let b = allocate_ports(&td).unwrap();
        assert_eq!(b[0].len(), 2);
        assert_ne!(b[0][0].host_port, 0);
        assert_ne!(b[0][0].host_port, b[0][1].host_port);
        assert_eq!(b[0][1].container_port, 81);

        let free = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut td = td;
        td.network_mode = NetworkMode::Host;
        td.container_definitions[0].port_mappings.truncate(1);
        td.container_definitions[0].port_mappings[0].container_port = free.into();
        let b = allocate_ports(&td).unwrap();
        assert_eq!(b[0][0].host_port, u32::from(free));
    }
}
