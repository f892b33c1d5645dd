//! A service's `serviceConnectConfiguration` (ECS Service Connect), typed member for
//! member as botocore names it, with ECS's defaults (`discoveryName` = `portName`,
//! `dnsName` = `<discoveryName>.<namespace>`) and the checks a service can make on its
//! own: required members, names, ports and timeout ranges.
//!
//! What it does not do: check what needs other resources (that the namespace exists,
//! that `portName` names a port mapping, that no other service claims the same client
//! alias or discovery name); `crate::servicediscovery` does that with the task
//! definition and the other services at hand.

use serde::{Deserialize, Serialize};

use crate::error::{check_range, Result, ValidationError};

use super::container::LogConfiguration;
use super::defaults::null_as_empty;
use super::field_support::NotAppliedList;

/// The largest timeout ECS accepts, in seconds.
pub const MAX_SERVICE_CONNECT_TIMEOUT_SECONDS: u32 = 2_147_483_647;

/// The longest service name `allowedCallers` accepts (ECS's service name limit).
pub const MAX_ALLOWED_CALLER_NAME_LEN: usize = 255;

/// `serviceConnectConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConnectConfiguration {
    pub enabled: bool,
    /// The namespace's name or ARN (`arn:berth:servicediscovery:...:namespace/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The ports this service offers to the namespace; none makes it a client only.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<ServiceConnectService>,
    /// Stored, not applied: the mesh proxy runs inside berth and logs with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    /// Stored, not applied: berth's mesh writes no access log yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_configuration: Option<ServiceConnectAccessLogConfiguration>,
}

/// `serviceConnectConfiguration.services[]`: one port of the service in the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConnectService {
    /// The `name` of a port mapping in the service's task definition.
    pub port_name: String,
    /// The name of this port in the namespace; defaults to `portName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub client_aliases: Vec<ServiceConnectClientAlias>,
    /// Stored, not applied: berth's node proxies reach the task's port directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_port_override: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfiguration>,
    /// Stored, not applied: berth's mesh is always mutual TLS with its own authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServiceConnectTlsConfiguration>,
    /// berth's own member, not ECS's: the services (names of ECS services of the same
    /// cluster, in the same namespace) that may call this port over the mesh. Absent:
    /// any service of the mesh may; present: only these (an empty list admits none).
    /// Checked by the called node's proxy against the caller's mutual TLS identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_callers: Option<Vec<String>>,
}

/// `clientAliases[]`: the name and port clients in the namespace call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConnectClientAlias {
    pub port: u32,
    /// Defaults to `<discoveryName>.<namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
}

/// `timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutConfiguration {
    /// Seconds a connection may stay idle; 0 disables it. ECS's defaults: 300 for
    /// HTTP, HTTP/2 and gRPC, 3600 for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// Seconds a request may take; 0 disables it. Not allowed on a TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request_timeout_seconds: Option<u32>,
}

/// `tls`: stored, not applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConnectTlsConfiguration {
    pub issuer_certificate_authority: ServiceConnectTlsCertificateAuthority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// `tls.issuerCertificateAuthority`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConnectTlsCertificateAuthority {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_pca_authority_arn: Option<String>,
}

/// `accessLogConfiguration` (botocore's `ServiceConnectAccessLogConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceConnectAccessLogConfiguration {
    /// `TEXT` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_query_parameters: Option<String>,
}

impl ServiceConnectConfiguration {
    /// The namespace's name: the last segment when given as an ARN.
    pub fn namespace_name(&self) -> Option<&str> {
        self.namespace.as_deref().map(crate::arn::last_segment)
    }

    /// The checks this configuration can make on its own (paths relative to it).
    pub fn validate(&self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        // Without a namespace, apply takes the cluster's serviceConnectDefaults.
        if let Some(ns) = self.namespace_name() {
            crate::servicediscovery::check_dns_name("namespace", ns)?;
        }
        for (i, s) in self.services.iter().enumerate() {
            s.validate()
                .map_err(|e| e.within(&format!("services[{i}]")))?;
        }
        if let Some(f) = self
            .access_log_configuration
            .as_ref()
            .and_then(|a| a.format.as_deref())
        {
            if !matches!(f, "TEXT" | "JSON") {
                return Err(ValidationError::new(
                    "accessLogConfiguration.format",
                    format!("must be TEXT or JSON, got {f:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Notes the members set that berth stores but does not apply, under `at`.
    pub(crate) fn note_not_applied(&self, at: &str, n: &mut NotAppliedList) {
        const SC: &str = "ServiceConnectConfiguration";
        const SCS: &str = "ServiceConnectService";
        n.note(
            self.log_configuration.is_some(),
            format!("{at}.logConfiguration"),
            SC,
            "logConfiguration",
        );
        n.note(
            self.access_log_configuration.is_some(),
            format!("{at}.accessLogConfiguration"),
            SC,
            "accessLogConfiguration",
        );
        for (i, s) in self.services.iter().enumerate() {
            n.note(
                s.ingress_port_override.is_some(),
                format!("{at}.services[{i}].ingressPortOverride"),
                SCS,
                "ingressPortOverride",
            );
            n.note(
                s.tls.is_some(),
                format!("{at}.services[{i}].tls"),
                SCS,
                "tls",
            );
        }
    }
}

impl ServiceConnectService {
    /// `discoveryName`, or `portName` when not given (ECS's default).
    pub fn discovery_name(&self) -> &str {
        self.discovery_name.as_deref().unwrap_or(&self.port_name)
    }

    /// An alias's `dnsName`, or `<discoveryName>.<namespace>` when not given (ECS's
    /// default), lowercase.
    pub fn alias_dns_name(&self, alias: &ServiceConnectClientAlias, namespace: &str) -> String {
        match &alias.dns_name {
            Some(d) => d.to_ascii_lowercase(),
            None => format!("{}.{namespace}", self.discovery_name()).to_ascii_lowercase(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.port_name.is_empty() {
            return Err(ValidationError::new(
                "portName",
                "is required: the name of a port mapping of the task definition",
            ));
        }
        crate::servicediscovery::check_dns_label("discoveryName", self.discovery_name())?;
        if self.client_aliases.len() > 1 {
            return Err(ValidationError::new(
                "clientAliases",
                format!(
                    "may list at most 1 alias (as ECS allows), got {}",
                    self.client_aliases.len()
                ),
            ));
        }
        for (i, a) in self.client_aliases.iter().enumerate() {
            let at = format!("clientAliases[{i}]");
            check_range(&format!("{at}.port"), a.port, 1, 65535)?;
            if let Some(d) = &a.dns_name {
                crate::servicediscovery::check_dns_name(&format!("{at}.dnsName"), d)?;
            }
        }
        if let Some(p) = self.ingress_port_override {
            check_range("ingressPortOverride", p, 1, 65535)?;
        }
        for (i, name) in self.allowed_callers.iter().flatten().enumerate() {
            crate::error::check_name(
                &format!("allowedCallers[{i}]"),
                name,
                MAX_ALLOWED_CALLER_NAME_LEN,
            )?;
        }
        if let Some(t) = &self.timeout {
            if let Some(s) = t.idle_timeout_seconds {
                check_range(
                    "timeout.idleTimeoutSeconds",
                    s,
                    0,
                    MAX_SERVICE_CONNECT_TIMEOUT_SECONDS,
                )?;
            }
            if let Some(s) = t.per_request_timeout_seconds {
                check_range(
                    "timeout.perRequestTimeoutSeconds",
                    s,
                    0,
                    MAX_SERVICE_CONNECT_TIMEOUT_SECONDS,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sc(v: serde_json::Value) -> ServiceConnectConfiguration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_ecs_defaults() {
        let c = sc(json!({"enabled": true, "namespace": "internal",
            "services": [{"portName": "http", "clientAliases": [{"port": 80}]}]}));
        c.validate().unwrap();
        let s = &c.services[0];
        assert_eq!(s.discovery_name(), "http");
        assert_eq!(
            s.alias_dns_name(&s.client_aliases[0], "internal"),
            "http.internal"
        );
        let arn = sc(json!({"enabled": true,
            "namespace": "arn:berth:servicediscovery:local:000000000000:namespace/corp.internal"}));
        assert_eq!(arn.namespace_name(), Some("corp.internal"));
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (
                json!({"enabled": true, "namespace": "Not A Name"}),
                "namespace",
            ),
            (
                json!({"enabled": true, "namespace": "internal", "services": [{"portName": ""}]}),
                "services[0].portName",
            ),
            (
                json!({"enabled": true, "namespace": "internal",
                    "services": [{"portName": "p", "discoveryName": "Not_A_Label"}]}),
                "services[0].discoveryName",
            ),
            (
                json!({"enabled": true, "namespace": "internal",
                    "services": [{"portName": "p", "clientAliases": [{"port": 0}]}]}),
                "services[0].clientAliases[0].port",
            ),
            (
                json!({"enabled": true, "namespace": "internal",
                    "services": [{"portName": "p", "clientAliases": [{"port": 80, "dnsName": "a..b"}]}]}),
                "services[0].clientAliases[0].dnsName",
            ),
            (
                json!({"enabled": true, "namespace": "internal",
                    "services": [{"portName": "p", "clientAliases": [{"port": 80}, {"port": 81}]}]}),
                "services[0].clientAliases",
            ),
            (
                json!({"enabled": true, "namespace": "internal",
                    "services": [{"portName": "p", "timeout": {"perRequestTimeoutSeconds": 2147483648u64}}]}),
                "services[0].timeout.perRequestTimeoutSeconds",
            ),
        ];
        for (v, field) in cases {
            let parsed: std::result::Result<ServiceConnectConfiguration, _> =
                serde_json::from_value(v.clone());
            let e = match parsed {
                Ok(c) => c.validate().unwrap_err(),
                // A value past u32 fails to parse; the range check covers the rest.
                Err(_) => continue,
            };
            assert_eq!(e.field, field, "{v}: {e}");
        }
    }

    #[test]
    fn allowed_callers_are_berths_member_and_name_services() {
        let c = sc(json!({"enabled": true, "namespace": "internal",
            "services": [{"portName": "http", "allowedCallers": ["web", "batch_v2"]}]}));
        c.validate().unwrap();
        assert_eq!(
            c.services[0].allowed_callers.as_deref(),
            Some(&["web".to_string(), "batch_v2".to_string()][..])
        );
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(
            j["services"][0]["allowedCallers"],
            json!(["web", "batch_v2"])
        );
        let absent = sc(json!({"enabled": true, "namespace": "internal",
            "services": [{"portName": "http"}]}));
        assert_eq!(absent.services[0].allowed_callers, None);
        assert!(serde_json::to_value(&absent).unwrap()["services"][0]
            .get("allowedCallers")
            .is_none());
        for bad in ["", "web.internal", "spiffe://x", &"x".repeat(256)] {
            let c = sc(json!({"enabled": true, "namespace": "internal",
                "services": [{"portName": "http", "allowedCallers": ["web", bad]}]}));
            let e = c.validate().unwrap_err();
            assert_eq!(e.field, "services[0].allowedCallers[1]", "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_disabled_configuration_needs_nothing() {
        sc(json!({"enabled": false})).validate().unwrap();
    }
}
