//! The stack file: a YAML (or JSON) document listing resources for `berth apply`.
//!
//! ```yaml
//! clusters: [{clusterName: default}]
//! taskDefinitions: [{family: web, containerDefinitions: [...]}]
//! targetGroups: [{targetGroupName: web, healthCheckPath: /health}]
//! loadBalancers: [{loadBalancerName: web, listeners: [...]}]
//! services: [{serviceName: web, taskDefinition: web, desiredCount: 3}]
//! scalableTargets: [{resourceId: service/default/web, minCapacity: 1, maxCapacity: 10}]
//! scalingPolicies: [{policyName: cpu, resourceId: service/default/web, ...}]
//! scheduledActions: [{scheduledActionName: night, resourceId: service/default/web, ...}]
//! namespaces: [{name: internal, dnsTtlSeconds: 5}]
//! ```
//!
//! Every section is optional: a file with only the autoscaling sections is a stack too.
//! Parsing reports the path of a bad field (`services[0].desiredCnt`); [`Stack::validate`]
//! checks every resource and the references between them that the file itself resolves
//! (references to what only the store holds are checked by apply).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::autoscaling::policy::AlbResourceLabel;
use crate::autoscaling::{ScalableTarget, ScalingPolicy, ScheduledAction, ServiceRef};
use crate::ecs::{Cluster, Service, TaskDefinition};
use crate::elb::{LoadBalancer, TargetGroup};
use crate::error::{Result, ValidationError};
use crate::servicediscovery::{check_against_task_definition, DiscoveryClaims, Namespace};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stack {
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    #[serde(default)]
    pub task_definitions: Vec<TaskDefinition>,
    #[serde(default)]
    pub target_groups: Vec<TargetGroup>,
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancer>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scalable_targets: Vec<ScalableTarget>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaling_policies: Vec<ScalingPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled_actions: Vec<ScheduledAction>,
    /// Cloud Map private DNS namespaces for `serviceRegistries` and
    /// `serviceConnectConfiguration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
}

impl Stack {
    /// Parses YAML (JSON is YAML too), naming the path of a field that does not fit.
    pub fn from_yaml(text: &str) -> Result<Stack> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ValidationError::parse(path, &e.into_inner().to_string())
        })
    }

    /// Validates every resource, then the references the stack resolves on its own:
    /// duplicate names, services' load balancer containers and ports, their mesh
    /// `portName`s and registry containers, and client aliases and discovery names
    /// claimed twice among the stack's services (the namespaces a service names may be
    /// in the store: apply checks them).
    pub fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            let at = format!("clusters[{i}]");
            c.validate().map_err(|e| e.within(&at))?;
            if !seen.insert(c.cluster_name.as_str()) {
                return Err(dup(&at, "clusterName", &c.cluster_name));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.task_definitions.iter().enumerate() {
            let at = format!("taskDefinitions[{i}]");
            if t.revision != 0 || !t.task_definition_arn.is_empty() {
                return Err(ValidationError::new(
                    format!("{at}.revision"),
                    "revisions are assigned by berth; remove revision and taskDefinitionArn",
                ));
            }
            t.validate().map_err(|e| e.within(&at))?;
            if !seen.insert(t.family.as_str()) {
                return Err(dup(&at, "family", &t.family));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.target_groups.iter().enumerate() {
            let at = format!("targetGroups[{i}]");
            t.validate().map_err(|e| e.within(&at))?;
            if !seen.insert(t.target_group_name.as_str()) {
                return Err(dup(&at, "targetGroupName", &t.target_group_name));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, l) in self.load_balancers.iter().enumerate() {
            let at = format!("loadBalancers[{i}]");
            l.validate().map_err(|e| e.within(&at))?;
            if !seen.insert(l.load_balancer_name.as_str()) {
                return Err(dup(&at, "loadBalancerName", &l.load_balancer_name));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, n) in self.namespaces.iter().enumerate() {
            let at = format!("namespaces[{i}]");
            n.validate().map_err(|e| e.within(&at))?;
            if !seen.insert(n.name.as_str()) {
                return Err(dup(&at, "name", &n.name));
            }
        }
        let mut seen = BTreeSet::new();
        let mut claims = DiscoveryClaims::default();
        for (i, s) in self.services.iter().enumerate() {
            let at = format!("services[{i}]");
            s.validate().map_err(|e| e.within(&at))?;
            if !seen.insert((s.cluster_name(), s.service_name.as_str())) {
                return Err(dup(&at, "serviceName", &s.service_name));
            }
            // When the stack holds the task definition, check the load balancer mappings
            // and the discovery ports.
            let family = crate::arn::parse_family_revision(&s.task_definition)
                .map(|(f, _)| f)
                .unwrap_or_default();
            let td = self.task_definitions.iter().find(|t| t.family == family);
            if let Some(td) = td {
                check_service_against_task_definition(s, td).map_err(|e| e.within(&at))?;
                check_against_task_definition(s, td).map_err(|e| e.within(&at))?;
            }
            let owner = format!("service {}/{}", s.cluster_name(), s.service_name);
            claims.claim(&owner, s, td).map_err(|e| e.within(&at))?;
        }
        self.validate_autoscaling()
    }

    /// The autoscaling sections: each resource, one scalable target per service, unique
    /// policy and action names per service, and the references this file resolves: a
    /// policy's or action's service has a scalable target here (or, checked by apply, in
    /// the store), and an ALBRequestCountPerTarget label names a target group of the
    /// service and a load balancer of type application forwarding to it, when the file
    /// holds them.
    fn validate_autoscaling(&self) -> Result<()> {
        let mut targets = BTreeSet::new();
        for (i, t) in self.scalable_targets.iter().enumerate() {
            let at = format!("scalableTargets[{i}]");
            let svc = t.validate().map_err(|e| e.within(&at))?;
            if !targets.insert(svc) {
                return Err(dup(&at, "resourceId", &t.resource_id));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.scaling_policies.iter().enumerate() {
            let at = format!("scalingPolicies[{i}]");
            let svc = p.validate().map_err(|e| e.within(&at))?;
            if !seen.insert((svc.clone(), p.policy_name.as_str())) {
                return Err(dup(&at, "policyName", &p.policy_name));
            }
            for (field, m) in p.predefined_metrics() {
                let Some(label) = m.alb_resource_label() else {
                    continue;
                };
                self.check_resource_label(&svc, &label)
                    .map_err(|e| e.within(&format!("{at}.{field}.resourceLabel")))?;
            }
        }
        let mut seen = BTreeSet::new();
        for (i, a) in self.scheduled_actions.iter().enumerate() {
            let at = format!("scheduledActions[{i}]");
            let svc = a.validate().map_err(|e| e.within(&at))?;
            if !seen.insert((svc, a.scheduled_action_name.as_str())) {
                return Err(dup(&at, "scheduledActionName", &a.scheduled_action_name));
            }
        }
        Ok(())
    }

    /// Checks a resource label against the service and load balancer this stack holds;
    /// what it does not hold is left to apply.
    fn check_resource_label(&self, svc: &ServiceRef, label: &AlbResourceLabel) -> Result<()> {
        if let Some(s) = self
            .services
            .iter()
            .find(|s| s.cluster_name() == svc.cluster && s.service_name == svc.service)
        {
            let tgs: Vec<&str> = s
                .load_balancers
                .iter()
                .map(|l| {
                    l.target_group_name
                        .as_deref()
                        .unwrap_or_else(|| crate::arn::last_segment(&l.target_group_arn))
                })
                .collect();
            check_label_target_group(svc, label, &tgs)?;
        }
        if let Some(lb) = self
            .load_balancers
            .iter()
            .find(|l| l.load_balancer_name == label.load_balancer)
        {
            check_label_load_balancer(label, lb)?;
        }
        Ok(())
    }
}

/// An ALBRequestCountPerTarget label must name one of the service's target groups
/// (`tgs`: the names in its `loadBalancers`).
pub fn check_label_target_group(
    svc: &ServiceRef,
    label: &AlbResourceLabel,
    tgs: &[&str],
) -> Result<()> {
    if tgs.contains(&label.target_group.as_str()) {
        return Ok(());
    }
    let listed = if tgs.is_empty() {
        "none".to_string()
    } else {
        tgs.join(", ")
    };
    Err(ValidationError::new(
        "",
        format!(
            "target group {:?} is not one of {svc}'s loadBalancers (it has: {listed})",
            label.target_group
        ),
    ))
}

/// An ALBRequestCountPerTarget label must name an application load balancer that
/// forwards to its target group (by a default action or a rule).
pub fn check_label_load_balancer(
    label: &AlbResourceLabel,
    lb: &crate::elb::LoadBalancer,
) -> Result<()> {
    if lb.kind != crate::elb::LoadBalancerType::Application {
        return Err(ValidationError::new(
            "",
            format!(
                "load balancer {:?} is a network load balancer; ALBRequestCountPerTarget needs an application load balancer",
                lb.load_balancer_name
            ),
        ));
    }
    let forwards = lb.listeners.iter().any(|l| {
        l.default_actions
            .iter()
            .chain(l.rules.iter().flat_map(|r| r.actions.iter()))
            .flat_map(|a| a.target_groups())
            .any(|(arn, name)| {
                name.unwrap_or_else(|| crate::arn::last_segment(arn)) == label.target_group
            })
    });
    if forwards {
        return Ok(());
    }
    Err(ValidationError::new(
        "",
        format!(
            "load balancer {:?} does not forward to target group {:?}",
            lb.load_balancer_name, label.target_group
        ),
    ))
}

/// Checks that each of a service's load balancer mappings names a container of the task
/// definition and a port that container maps.
pub fn check_service_against_task_definition(s: &Service, td: &TaskDefinition) -> Result<()> {
    s.check_capacity_against(td)?;
    for (j, lb) in s.load_balancers.iter().enumerate() {
        let c = td.container(&lb.container_name).ok_or_else(|| {
            ValidationError::new(
                format!("loadBalancers[{j}].containerName"),
                format!(
                    "task definition {} has no container named {:?}",
                    td.family, lb.container_name
                ),
            )
        })?;
        if !c
            .port_mappings
            .iter()
            .any(|p| p.container_port == lb.container_port)
        {
            return Err(ValidationError::new(
                format!("loadBalancers[{j}].containerPort"),
                format!(
                    "container {:?} maps no port {}",
                    lb.container_name, lb.container_port
                ),
            ));
        }
    }
    Ok(())
}

fn dup(at: &str, field: &str, name: &str) -> ValidationError {
    ValidationError::new(
        format!("{at}.{field}"),
        format!("{name:?} appears twice in this stack"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
clusters:
  - clusterName: default
taskDefinitions:
  - family: web
    containerDefinitions:
      - name: app
        image: whoami
        portMappings: [{containerPort: 8080}]
targetGroups:
  - targetGroupName: web
loadBalancers:
  - loadBalancerName: web
    listeners:
      - port: 80
        protocol: HTTP
        defaultActions: [{type: forward, targetGroupName: web}]
services:
  - serviceName: web
    taskDefinition: web
    desiredCount: 3
    loadBalancers: [{targetGroupName: web, containerName: app, containerPort: 8080}]
"#;

    #[test]
    fn parses_and_validates() {
        let s = Stack::from_yaml(GOOD).unwrap();
        s.validate().unwrap();
        assert_eq!(s.services[0].desired_count, 3);
    }

    #[test]
    fn unknown_key_names_its_path() {
        let bad = GOOD.replace("desiredCount: 3", "desiredCnt: 3");
        let e = Stack::from_yaml(&bad).unwrap_err();
        assert_eq!(e.field, "services[0].desiredCnt");
        assert!(e.message.contains("desiredCnt"), "{e}");
    }

    #[test]
    fn negative_count_and_bad_port() {
        let bad = GOOD.replace("desiredCount: 3", "desiredCount: -2");
        let e = Stack::from_yaml(&bad).unwrap().validate().unwrap_err();
        assert_eq!(e.field, "services[0].desiredCount");
        let bad = GOOD.replace(
            "containerPort: 8080}]\ntarget",
            "containerPort: 70000}]\ntarget",
        );
        let e = Stack::from_yaml(&bad).unwrap().validate().unwrap_err();
        assert_eq!(
            e.field,
            "taskDefinitions[0].containerDefinitions[0].portMappings[0].containerPort"
        );
    }

    #[test]
    fn service_port_must_be_mapped() {
        let bad = GOOD.replace(
            "containerName: app, containerPort: 8080",
            "containerName: app, containerPort: 9090",
        );
        let e = Stack::from_yaml(&bad).unwrap().validate().unwrap_err();
        assert_eq!(e.field, "services[0].loadBalancers[0].containerPort");
    }

    #[test]
    fn type_errors_name_the_field() {
        let bad = GOOD.replace("desiredCount: 3", "desiredCount: many");
        let e = Stack::from_yaml(&bad).unwrap_err();
        assert_eq!(e.field, "services[0].desiredCount");
    }
}
