//! The environment of a task's container, the same on both runtimes: the container's
//! `environment` and its resolved `secrets`, then what berth adds: `BERTH_TASK_ARN`, `BERTH_TASK_ID`,
//! `BERTH_CLUSTER`, `BERTH_CONTAINER_NAME`, `PORT` (the first port mapping's listen port)
//! and `PORT_<NAME>` for each named mapping (name upper-cased, other than letters and
//! digits → `_`), and `BERTH_DNS_SERVER` (`ip:port` of the node's discovery DNS server)
//! when the node runs one.
//!
//! The listen port is the port the program must listen on for a mapping: the container
//! port inside a Docker container, the chosen host port for a local process. Which one
//! it is the runtime decides; this module only names the variables.

use std::net::SocketAddr;

use berth_model::ecs::TransportProtocol;

use crate::TaskSpec;

/// The environment variable of a named port mapping: `http` → `PORT_HTTP`,
/// `admin-api` → `PORT_ADMIN_API`.
pub(crate) fn port_env_name(name: &str) -> String {
    format!(
        "PORT_{}",
        name.to_ascii_uppercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    )
}

/// The environment of container `idx` of `spec`, in the order a program sees later
/// entries win: the container's own `environment` and secrets first. `listen_ports[i]` is the listen
/// port of the container's `i`-th port mapping; mappings without one get no variable.
/// `dns_server` is the node's discovery DNS server, if it runs one.
pub(crate) fn container_environment(
    spec: &TaskSpec,
    idx: usize,
    listen_ports: &[u32],
    dns_server: Option<SocketAddr>,
) -> Vec<(String, String)> {
    let def = &spec.task_definition.container_definitions[idx];
    let mut env: Vec<(String, String)> = def
        .environment
        .iter()
        .map(|kv| (kv.name.clone(), kv.value.clone()))
        .collect();
    env.extend(
        spec.secrets
            .iter()
            .filter(|s| s.container_name == def.name)
            .map(|s| (s.name.clone(), s.value.clone())),
    );
    env.push(("BERTH_TASK_ARN".into(), spec.task_arn.clone()));
    env.push(("BERTH_TASK_ID".into(), spec.task_id().to_string()));
    env.push(("BERTH_CLUSTER".into(), spec.cluster.clone()));
    env.push(("BERTH_CONTAINER_NAME".into(), def.name.clone()));
    if let Some(port) = listen_ports.first() {
        env.push(("PORT".into(), port.to_string()));
    }
    for (pm, port) in def.port_mappings.iter().zip(listen_ports) {
        if let Some(name) = &pm.name {
            env.push((port_env_name(name), port.to_string()));
        }
    }
    if let Some(dns) = dns_server {
        env.push(("BERTH_DNS_SERVER".into(), dns.to_string()));
    }
    env
}

/// `tcp` or `udp`, as Docker's port keys (`8080/tcp`) and berth's messages write it.
pub(crate) fn protocol_name(p: TransportProtocol) -> &'static str {
    match p {
        TransportProtocol::Tcp => "tcp",
        TransportProtocol::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{task_definition, task_spec};

    fn spec() -> TaskSpec {
        task_spec(
            "abc123",
            task_definition(json!([{
                "name": "web", "image": "x",
                "environment": [{"name": "MODE", "value": "blue"}, {"name": "PORT", "value": "1"}],
                "portMappings": [
                    {"containerPort": 8080, "name": "http"},
                    {"containerPort": 9090},
                    {"containerPort": 9100, "name": "admin-api", "protocol": "udp"},
                ],
            }])),
        )
    }

    #[test]
    fn port_variable_names() {
        assert_eq!(port_env_name("http"), "PORT_HTTP");
        assert_eq!(port_env_name("admin-api"), "PORT_ADMIN_API");
        assert_eq!(port_env_name("a.b c"), "PORT_A_B_C");
    }

    #[test]
    fn berth_variables_follow_the_containers_own() {
        let spec = spec();
        let env = container_environment(&spec, 0, &[32768, 32769, 32770], None);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(
            pairs,
            vec![
                ("MODE", "blue"),
                ("PORT", "1"),
                ("BERTH_TASK_ARN", spec.task_arn.as_str()),
                ("BERTH_TASK_ID", "abc123"),
                ("BERTH_CLUSTER", "default"),
                ("BERTH_CONTAINER_NAME", "web"),
                ("PORT", "32768"),
                ("PORT_HTTP", "32768"),
                ("PORT_ADMIN_API", "32770"),
            ]
        );
    }

    #[test]
    fn a_containers_secrets_follow_its_environment_and_no_other_container_gets_them() {
        use berth_model::task_secrets::SecretVariable;
        let mut spec = spec();
        let var = |container: &str, name: &str, value: &str| SecretVariable {
            container_name: container.into(),
            name: name.into(),
            value: value.into(),
        };
        spec.secrets = vec![var("web", "DB_PASSWORD", "s3cret"), var("other", "X", "no")];
        let env = container_environment(&spec, 0, &[], None);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            &names[..4],
            ["MODE", "PORT", "DB_PASSWORD", "BERTH_TASK_ARN"]
        );
        assert_eq!(env[2].1, "s3cret");
        assert!(!names.contains(&"X"), "{names:?}");
    }

    #[test]
    fn no_listen_ports_no_port_variables() {
        let env = container_environment(&spec(), 0, &[], None);
        assert!(env.iter().all(|(k, _)| k != "PORT_HTTP"), "{env:?}");
        assert_eq!(env.iter().filter(|(k, _)| k == "PORT").count(), 1);
        assert!(env
            .iter()
            .any(|(k, v)| k == "BERTH_CLUSTER" && v == "default"));
    }

    #[test]
    fn the_nodes_dns_server_is_named_when_there_is_one() {
        let env = container_environment(&spec(), 0, &[], Some("127.0.0.1:53".parse().unwrap()));
        assert!(env
            .iter()
            .any(|(k, v)| k == "BERTH_DNS_SERVER" && v == "127.0.0.1:53"));
        let env = container_environment(&spec(), 0, &[], None);
        assert!(env.iter().all(|(k, _)| k != "BERTH_DNS_SERVER"));
    }

    #[test]
    fn protocol_names() {
        assert_eq!(protocol_name(TransportProtocol::Tcp), "tcp");
        assert_eq!(protocol_name(TransportProtocol::Udp), "udp");
    }
}
