//! Validation of one container definition: names, ports, environment, health check and
//! timeouts, the host settings Docker applies with ECS's network-mode rules, and the
//! members berth refuses with their reasons.
//!
//! What it does not do: the rules that span containers (names, links, dependsOn,
//! volumes) or FARGATE's (the task definition's validation does).

use crate::error::{check_name, check_range, Result, ValidationError};

use super::container::*;
use super::defaults::RESERVED_PORTS;
use super::field_support::refuse;
use super::network_mode::NetworkMode;

/// Validates container `c` of a task in network mode `mode`; `host_ports` collects the
/// host ports the task's containers claim so far. (What FARGATE adds is
/// [`super::task_definition::fargate`]'s.)
pub(super) fn validate_container(
    c: &ContainerDefinition,
    mode: NetworkMode,
    host_ports: &mut std::collections::BTreeSet<(u32, TransportProtocol)>,
) -> Result<()> {
    check_name("name", &c.name, 255)?;
    if c.image.trim().is_empty() {
        return Err(ValidationError::new("image", "must name an image"));
    }
    check_range("cpu", c.cpu, 0, 10240)?;
    if let Some(m) = c.memory {
        check_range("memory", m, 6, 4_194_304)?;
    }
    if let Some(r) = c.memory_reservation {
        check_range("memoryReservation", r, 4, 4_194_304)?;
        if let Some(m) = c.memory {
            if m <= r {
                return Err(ValidationError::new(
                    "memory",
                    format!("must be greater than memoryReservation ({r}), got {m}"),
                ));
            }
        }
    }
    for (j, p) in c.port_mappings.iter().enumerate() {
        let at = format!("portMappings[{j}]");
        if p.container_port_range.is_some() {
            return Err(refuse(
                format!("{at}.containerPortRange"),
                "PortMapping",
                "containerPortRange",
            ));
        }
        check_range(&format!("{at}.containerPort"), p.container_port, 1, 65535)?;
        let hp = p.host_port.unwrap_or(0);
        check_range(&format!("{at}.hostPort"), hp, 0, 65535)?;
        match mode {
            NetworkMode::Host | NetworkMode::Awsvpc if hp != 0 && hp != p.container_port => {
                return Err(ValidationError::new(
                    format!("{at}.hostPort"),
                    format!(
                        "must equal containerPort ({}) in {} network mode, got {hp}",
                        p.container_port,
                        mode.as_str()
                    ),
                ));
            }
            NetworkMode::None => {
                return Err(ValidationError::new(
                    at,
                    "port mappings are not allowed in none network mode",
                ));
            }
            _ => {}
        }
        let effective = match mode {
            NetworkMode::Host => p.container_port,
            _ => hp,
        };
        if effective != 0 {
            if RESERVED_PORTS.contains(&effective) {
                return Err(ValidationError::new(
                    format!("{at}.hostPort"),
                    format!("port {effective} is reserved (reserved: 22, 2375, 2376, 51678-51680)"),
                ));
            }
            if !host_ports.insert((effective, p.protocol)) {
                return Err(ValidationError::new(
                    format!("{at}.hostPort"),
                    format!("host port {effective} is mapped twice in this task definition"),
                ));
            }
        }
        if let Some(n) = &p.name {
            check_name(&format!("{at}.name"), n, 64)?;
        }
    }
    for (j, e) in c.environment.iter().enumerate() {
        if e.name.is_empty() || e.name.contains('=') {
            return Err(ValidationError::new(
                format!("environment[{j}].name"),
                "must be a non-empty name without '='",
            ));
        }
    }
    if let Some(h) = &c.health_check {
        match h.command.first().map(String::as_str) {
            Some("CMD") | Some("CMD-SHELL") if h.command.len() >= 2 => {}
            _ => {
                return Err(ValidationError::new(
                    "healthCheck.command",
                    "must be [\"CMD\", executable, args...] or [\"CMD-SHELL\", \"command\"]",
                ))
            }
        }
        check_range("healthCheck.interval", h.interval, 5, 300)?;
        check_range("healthCheck.timeout", h.timeout, 2, 60)?;
        check_range("healthCheck.retries", h.retries, 1, 10)?;
        check_range("healthCheck.startPeriod", h.start_period, 0, 300)?;
    }
    if let Some(t) = c.stop_timeout {
        check_range("stopTimeout", t, 0, 3600)?;
    }
    if let Some(t) = c.start_timeout {
        check_range("startTimeout", t, 0, 3600)?;
    }
    validate_host_settings(c, mode)?;
    refuse_container_members(c)
}

/// The members Docker applies to the container's host settings, with ECS's rules
/// about the network modes they may appear in.
fn validate_host_settings(c: &ContainerDefinition, mode: NetworkMode) -> Result<()> {
    let not_in = |field: &str, modes: &[NetworkMode]| -> Result<()> {
        if modes.contains(&mode) {
            return Err(ValidationError::new(
                field,
                format!(
                    "is not allowed in {} network mode (ECS allows it in {})",
                    mode.as_str(),
                    NetworkMode::ALL
                        .iter()
                        .filter(|m| !modes.contains(m))
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(())
    };
    if c.hostname.is_some() {
        not_in("hostname", &[NetworkMode::Awsvpc, NetworkMode::Host])?;
    }
    if !c.links.is_empty() {
        // ECS: "only supported if the network mode of a task definition is bridge".
        not_in(
            "links",
            &[NetworkMode::Awsvpc, NetworkMode::Host, NetworkMode::None],
        )?;
    }
    if !c.dns_servers.is_empty() {
        not_in("dnsServers", &[NetworkMode::Awsvpc])?;
    }
    if !c.dns_search_domains.is_empty() {
        not_in("dnsSearchDomains", &[NetworkMode::Awsvpc])?;
    }
    if !c.extra_hosts.is_empty() {
        not_in("extraHosts", &[NetworkMode::Awsvpc])?;
    }
    for (j, u) in c.ulimits.iter().enumerate() {
        if !ULIMIT_NAMES.contains(&u.name.as_str()) {
            return Err(ValidationError::new(
                format!("ulimits[{j}].name"),
                format!(
                    "must be one of {}, got {:?}",
                    ULIMIT_NAMES.join(", "),
                    u.name
                ),
            ));
        }
        if u.soft_limit > u.hard_limit {
            return Err(ValidationError::new(
                format!("ulimits[{j}].softLimit"),
                format!(
                    "must not exceed hardLimit ({}), got {}",
                    u.hard_limit, u.soft_limit
                ),
            ));
        }
    }
    for (j, h) in c.extra_hosts.iter().enumerate() {
        if h.hostname.trim().is_empty() || h.ip_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ValidationError::new(
                format!("extraHosts[{j}]"),
                format!(
                    "must give a hostname and an IP address, got {:?} {:?}",
                    h.hostname, h.ip_address
                ),
            ));
        }
    }
    for (j, s) in c.system_controls.iter().enumerate() {
        if s.namespace.trim().is_empty() {
            return Err(ValidationError::new(
                format!("systemControls[{j}].namespace"),
                "must name a kernel parameter such as net.core.somaxconn",
            ));
        }
    }
    if let Some(lp) = &c.linux_parameters {
        if let Some(s) = lp.swappiness {
            check_range("linuxParameters.swappiness", s, 0, 100)?;
        }
        if lp.max_swap.is_some() && c.memory.is_none() {
            return Err(ValidationError::new(
                "linuxParameters.maxSwap",
                "needs the container's memory (the hard limit swap is added to)",
            ));
        }
        if let Some(m) = lp.shared_memory_size {
            check_range("linuxParameters.sharedMemorySize", m, 1, 4_194_304)?;
        }
        for (j, t) in lp.tmpfs.iter().enumerate() {
            if !t.container_path.starts_with('/') {
                return Err(ValidationError::new(
                    format!("linuxParameters.tmpfs[{j}].containerPath"),
                    format!("must be an absolute path, got {:?}", t.container_path),
                ));
            }
            check_range(
                &format!("linuxParameters.tmpfs[{j}].size"),
                t.size,
                1,
                4_194_304,
            )?;
        }
        for (j, d) in lp.devices.iter().enumerate() {
            if !d.host_path.starts_with('/') {
                return Err(ValidationError::new(
                    format!("linuxParameters.devices[{j}].hostPath"),
                    format!("must be an absolute path, got {:?}", d.host_path),
                ));
            }
        }
    }
    Ok(())
}

/// The container members berth refuses, each with what ECS allows and what berth does
/// not do (the reasons are [`super::field_support::UNSUPPORTED`]'s).
fn refuse_container_members(c: &ContainerDefinition) -> Result<()> {
    const SHAPE: &str = "ContainerDefinition";
    if !c.environment_files.is_empty() {
        return Err(refuse("environmentFiles", SHAPE, "environmentFiles"));
    }
    if !c.resource_requirements.is_empty() {
        return Err(refuse(
            "resourceRequirements",
            SHAPE,
            "resourceRequirements",
        ));
    }
    if c.firelens_configuration.is_some() {
        return Err(refuse(
            "firelensConfiguration",
            SHAPE,
            "firelensConfiguration",
        ));
    }
    if !c.credential_specs.is_empty() {
        return Err(refuse("credentialSpecs", SHAPE, "credentialSpecs"));
    }
    Ok(())
}
