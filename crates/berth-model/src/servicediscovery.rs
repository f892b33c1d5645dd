//! Service discovery (Cloud Map's vocabulary): the [`Namespace`] resource (a private DNS
//! namespace such as `internal`), the discovery service ARNs that a service's
//! `serviceRegistries[].registryArn` names, DNS name rules, and the checks between a
//! service's discovery configuration and the rest of the desired state: its task
//! definition ([`check_against_task_definition`]) and the other services of every
//! cluster ([`DiscoveryClaims`]).
//!
//! ARNs:
//! - a namespace: `arn:berth:servicediscovery:<region>:<account>:namespace/<name>`;
//! - a discovery service, which berth does not store (it exists as long as a service
//!   registers into it): `arn:berth:servicediscovery:<region>:<account>:service/<namespace>/<name>`.
//!   A service with `serviceRegistries` publishes its tasks as `<name>.<namespace>`.
//!
//! What it does not do: build the DNS records (the control plane does) or serve them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::arn::{ACCOUNT, REGION};
use crate::discovery::DEFAULT_DNS_TTL_SECONDS;
use crate::ecs::{
    ContainerDefinition, NetworkMode, PortMapping, Service, ServiceRegistry, TaskDefinition,
};
use crate::error::{check_range, Result, ValidationError};
use crate::time::Timestamp;

/// The largest TTL Cloud Map accepts.
pub const MAX_DNS_TTL_SECONDS: u32 = 2_147_483_647;

/// A Cloud Map private DNS namespace: the zone its services' names live in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// A DNS name: lowercase labels of letters, digits and hyphens, separated by dots.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds its records may be cached.
    #[serde(default = "d_ttl")]
    pub dns_ttl_seconds: u32,
    // ---- filled in by berth ----
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

fn d_ttl() -> u32 {
    DEFAULT_DNS_TTL_SECONDS
}

impl Namespace {
    pub fn validate(&self) -> Result<()> {
        check_dns_name("name", &self.name)?;
        if self.name != self.name.to_ascii_lowercase() {
            return Err(ValidationError::new(
                "name",
                format!("must be lowercase, got {:?}", self.name),
            ));
        }
        if let Some(d) = &self.description {
            if d.len() > 1024 {
                return Err(ValidationError::new(
                    "description",
                    format!("may be at most 1024 characters, got {}", d.len()),
                ));
            }
        }
        check_range(
            "dnsTtlSeconds",
            self.dns_ttl_seconds,
            0,
            MAX_DNS_TTL_SECONDS,
        )
    }

    /// The user-written part, for comparing a stack file's namespace with the stored one.
    pub fn spec(&self) -> Namespace {
        Namespace {
            arn: String::new(),
            created_at: None,
            ..self.clone()
        }
    }
}

/// `arn:berth:servicediscovery:<region>:<account>:namespace/<name>`.
pub fn namespace_arn(name: &str) -> String {
    format!("arn:berth:servicediscovery:{REGION}:{ACCOUNT}:namespace/{name}")
}

/// `arn:berth:servicediscovery:<region>:<account>:service/<namespace>/<name>`.
pub fn discovery_service_arn(namespace: &str, name: &str) -> String {
    format!("arn:berth:servicediscovery:{REGION}:{ACCOUNT}:service/{namespace}/{name}")
}

/// The (namespace, name) a discovery service ARN names.
pub fn parse_discovery_service_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:berth:servicediscovery:")?;
    let mut parts = rest.splitn(3, ':');
    let (_region, _account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let (ns, name) = resource.strip_prefix("service/")?.split_once('/')?;
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some((ns, name))
}

/// Checks one DNS label: 1 to 63 lowercase letters, digits and hyphens, not starting
/// or ending with a hyphen.
pub fn check_dns_label(field: &str, label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("must be a DNS label: 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen, got {label:?}"),
    ))
}

/// Checks a DNS name: labels (see [`check_dns_label`]) separated by dots, at most 253
/// characters, no trailing dot. Upper case is accepted and read as lower case.
pub fn check_dns_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 253 {
        return Err(ValidationError::new(
            field,
            format!(
                "must be a DNS name of 1 to 253 characters, got {} characters",
                name.len()
            ),
        ));
    }
    let lower = name.to_ascii_lowercase();
    for label in lower.split('.') {
        check_dns_label(field, label).map_err(|_| {
            ValidationError::new(
                field,
                format!("must be a DNS name: labels of letters, digits and hyphens separated by dots (no trailing dot), got {name:?}"),
            )
        })?;
    }
    Ok(())
}

/// A service's `serviceRegistries` on their own: at most one (as ECS allows), naming a
/// berth discovery service, with ports in range.
pub fn check_service_registries(registries: &[ServiceRegistry]) -> Result<()> {
    if registries.len() > 1 {
        return Err(ValidationError::new(
            "serviceRegistries",
            format!(
                "may list at most 1 registry (as ECS allows), got {}",
                registries.len()
            ),
        ));
    }
    for (i, r) in registries.iter().enumerate() {
        let at = format!("serviceRegistries[{i}]");
        let arn = r.registry_arn.as_deref().unwrap_or_default();
        let Some((ns, name)) = parse_discovery_service_arn(arn) else {
            return Err(ValidationError::new(
                format!("{at}.registryArn"),
                format!(
                    "must name a discovery service as {}, got {arn:?}",
                    discovery_service_arn("<namespace>", "<name>")
                ),
            ));
        };
        check_dns_name(&format!("{at}.registryArn"), ns)?;
        check_dns_label(&format!("{at}.registryArn"), name)?;
        if let Some(p) = r.port {
            check_range(&format!("{at}.port"), p, 1, 65535)?;
        }
        if let Some(p) = r.container_port {
            check_range(&format!("{at}.containerPort"), p, 1, 65535)?;
        }
    }
    Ok(())
}

/// The container and port mapping named `port_name` in `td`.
pub fn named_port<'a>(
    td: &'a TaskDefinition,
    port_name: &str,
) -> Option<(&'a ContainerDefinition, &'a PortMapping)> {
    td.container_definitions.iter().find_map(|c| {
        c.port_mappings
            .iter()
            .find(|p| p.name.as_deref() == Some(port_name))
            .map(|p| (c, p))
    })
}

/// Checks a service's `serviceConnectConfiguration` and `serviceRegistries` against its
/// task definition: each `portName` names a port mapping, `perRequestTimeoutSeconds` is
/// only set on an HTTP port (one with an `appProtocol`), and a registry's
/// `containerName`/`containerPort` name a container and a port it maps (both required
/// in bridge and host mode, where the record is an SRV record with the host port).
pub fn check_against_task_definition(s: &Service, td: &TaskDefinition) -> Result<()> {
    if let Some(sc) = s
        .service_connect_configuration
        .as_ref()
        .filter(|c| c.enabled)
    {
        for (i, svc) in sc.services.iter().enumerate() {
            let at = format!("serviceConnectConfiguration.services[{i}]");
            let Some((_, pm)) = named_port(td, &svc.port_name) else {
                let names: Vec<&str> = td
                    .container_definitions
                    .iter()
                    .flat_map(|c| c.port_mappings.iter())
                    .filter_map(|p| p.name.as_deref())
                    .collect();
                let names = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                return Err(ValidationError::new(
                    format!("{at}.portName"),
                    format!(
                        "task definition {} has no port mapping named {:?} (its named ports: {names})",
                        td.family, svc.port_name
                    ),
                ));
            };
            let per_request = svc
                .timeout
                .as_ref()
                .and_then(|t| t.per_request_timeout_seconds);
            if per_request.is_some() && pm.app_protocol.is_none() {
                return Err(ValidationError::new(
                    format!("{at}.timeout.perRequestTimeoutSeconds"),
                    format!(
                        "is not allowed on a TCP port: port mapping {:?} has no appProtocol; give it appProtocol http, http2 or grpc, or remove perRequestTimeoutSeconds",
                        svc.port_name
                    ),
                ));
            }
        }
    }
    for (i, r) in s.service_registries.iter().enumerate() {
        let at = format!("serviceRegistries[{i}]");
        let host_mode = td.network_mode != NetworkMode::Awsvpc;
        if host_mode && (r.container_name.is_none() || r.container_port.is_none()) {
            return Err(ValidationError::new(
                at,
                format!(
                    "task definition {} uses {} network mode, so its tasks are published as SRV records: give containerName and containerPort",
                    td.family,
                    td.network_mode.as_str()
                ),
            ));
        }
        if let Some(name) = &r.container_name {
            let c = td.container(name).ok_or_else(|| {
                ValidationError::new(
                    format!("{at}.containerName"),
                    format!(
                        "task definition {} has no container named {name:?}",
                        td.family
                    ),
                )
            })?;
            if let Some(port) = r.container_port {
                if !c.port_mappings.iter().any(|p| p.container_port == port) {
                    return Err(ValidationError::new(
                        format!("{at}.containerPort"),
                        format!("container {name:?} maps no port {port}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// One client alias claimed so far.
#[derive(Debug, Clone)]
struct AliasClaim {
    dns_name: String,
    owner: String,
    tcp: bool,
}

/// The client aliases and discovery names services claim, collected service by service
/// so a second claim is refused naming both services.
#[derive(Debug, Default)]
pub struct DiscoveryClaims {
    /// (namespace, discovery name) → owner.
    names: BTreeMap<(String, String), String>,
    /// Alias port → the aliases on it.
    ports: BTreeMap<u32, Vec<AliasClaim>>,
}

impl DiscoveryClaims {
    /// Claims the discovery names and client aliases of `s` for `owner` (such as
    /// `service default/web`). `td` is its task definition when known (it says whether
    /// an alias port is TCP). Errors are at paths within the service.
    pub fn claim(&mut self, owner: &str, s: &Service, td: Option<&TaskDefinition>) -> Result<()> {
        for (i, r) in s.service_registries.iter().enumerate() {
            let Some((ns, name)) = r
                .registry_arn
                .as_deref()
                .and_then(parse_discovery_service_arn)
            else {
                continue;
            };
            self.claim_name(
                ns,
                name,
                owner,
                format!("serviceRegistries[{i}].registryArn"),
            )?;
        }
        let Some(sc) = s
            .service_connect_configuration
            .as_ref()
            .filter(|c| c.enabled)
        else {
            return Ok(());
        };
        let Some(ns) = sc.namespace_name() else {
            return Ok(());
        };
        for (i, svc) in sc.services.iter().enumerate() {
            let at = format!("serviceConnectConfiguration.services[{i}]");
            self.claim_name(
                ns,
                svc.discovery_name(),
                owner,
                format!("{at}.discoveryName"),
            )?;
            let tcp = td
                .and_then(|td| named_port(td, &svc.port_name))
                .map(|(_, pm)| pm.app_protocol.is_none());
            for (j, a) in svc.client_aliases.iter().enumerate() {
                let dns_name = svc.alias_dns_name(a, ns);
                let field = format!("{at}.clientAliases[{j}]");
                let on_port = self.ports.entry(a.port).or_default();
                if let Some(c) = on_port.iter().find(|c| c.dns_name == dns_name) {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "client alias {dns_name}:{} is claimed by both {} and {owner}; each alias (port and dnsName) may belong to one service",
                            a.port, c.owner
                        ),
                    ));
                }
                let this_tcp = tcp.unwrap_or(false);
                if let Some(c) = on_port.iter().find(|c| c.tcp || this_tcp) {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "client alias {dns_name}:{} shares port {} with {}:{} of {}, and a TCP alias (a port mapping without appProtocol) needs its port to itself: choose another port",
                            a.port, a.port, c.dns_name, a.port, c.owner
                        ),
                    ));
                }
                on_port.push(AliasClaim {
                    dns_name,
                    owner: owner.to_string(),
                    tcp: this_tcp,
                });
            }
        }
        Ok(())
    }

    fn claim_name(&mut self, ns: &str, name: &str, owner: &str, field: String) -> Result<()> {
        let key = (ns.to_string(), name.to_ascii_lowercase());
        if let Some(other) = self.names.get(&key) {
            return Err(ValidationError::new(
                field,
                format!(
                    "discovery name {name:?} in namespace {ns:?} is used by both {other} and {owner}; a discovery name may be used once in a namespace"
                ),
            ));
        }
        self.names.insert(key, owner.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
