//! Where a service's tasks may run: its `launchType` and its `capacityProviderStrategy`,
//! their rules as CreateService states them, and the capacity each names.
//!
//! berth has two kinds of capacity: the cluster's own container instances (the EC2
//! launch type, and any capacity provider that is not a Fargate one: in ECS an Auto
//! Scaling group) and the managed capacity (the FARGATE launch type and the `FARGATE`
//! and `FARGATE_SPOT` providers: agents an operator started as managed capacity).
//!
//! It does not place tasks or split them between providers (the control plane's
//! scheduler does), and checks a service against its task definition only for the
//! Fargate compatibility ([`Service::check_capacity_against`]).

use crate::error::{Result, ValidationError};

use super::service::{CapacityProviderStrategyItem, SchedulingStrategy, Service};
use super::task_definition::{Compatibility, TaskDefinition};

/// The capacity providers every ECS cluster can use for Fargate.
pub const FARGATE_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

/// The most providers one strategy may list (CreateService).
pub const MAX_STRATEGY_ITEMS: usize = 20;

/// Which kind of capacity a task runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityKind {
    /// The cluster's container instances that are not managed capacity.
    Instances,
    /// Managed capacity (Fargate).
    Managed,
}

/// The kind of capacity the provider `name` stands for.
pub fn provider_kind(name: &str) -> CapacityKind {
    if FARGATE_PROVIDERS.contains(&name) {
        CapacityKind::Managed
    } else {
        CapacityKind::Instances
    }
}

impl CapacityProviderStrategyItem {
    /// The weight, 0 when not given (as in ECS).
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(0)
    }

    /// The base, 0 when not given.
    pub fn base(&self) -> u32 {
        self.base.unwrap_or(0)
    }
}

impl Service {
    /// The kind of capacity the service's tasks run on: the strategy's (all its
    /// providers are of one kind), else the launch type's.
    pub fn capacity_kind(&self) -> CapacityKind {
        match self.capacity_provider_strategy.first() {
            Some(item) => provider_kind(&item.capacity_provider),
            None if self.launch_type == "FARGATE" => CapacityKind::Managed,
            None => CapacityKind::Instances,
        }
    }

    /// The rules of `launchType` with `capacityProviderStrategy`, as CreateService
    /// states them.
    pub(super) fn validate_capacity(&self) -> Result<()> {
        let strategy = &self.capacity_provider_strategy;
        if self.scheduling_strategy == SchedulingStrategy::Daemon
            && (self.launch_type == "FARGATE" || !strategy.is_empty())
        {
            return Err(ValidationError::new(
                "schedulingStrategy",
                "DAEMON is not supported with launchType FARGATE or a \
                 capacityProviderStrategy: a daemon runs one task on each of the \
                 cluster's container instances; use REPLICA",
            ));
        }
        if strategy.is_empty() {
            return Ok(());
        }
        if self.launch_type != "EC2" {
            return Err(ValidationError::new(
                "launchType",
                format!(
                    "cannot be given with capacityProviderStrategy (got {:?}): a service \
                     uses a launch type or a capacity provider strategy, not both",
                    self.launch_type
                ),
            ));
        }
        if strategy.len() > MAX_STRATEGY_ITEMS {
            return Err(ValidationError::new(
                "capacityProviderStrategy",
                format!(
                    "may list at most {MAX_STRATEGY_ITEMS} capacity providers, got {}",
                    strategy.len()
                ),
            ));
        }
        let mut with_base = None;
        for (i, item) in strategy.iter().enumerate() {
            let at = format!("capacityProviderStrategy[{i}]");
            check_provider_name(&format!("{at}.capacityProvider"), &item.capacity_provider)?;
            if strategy[..i]
                .iter()
                .any(|o| o.capacity_provider == item.capacity_provider)
            {
                return Err(ValidationError::new(
                    format!("{at}.capacityProvider"),
                    format!("{:?} is listed twice", item.capacity_provider),
                ));
            }
            if item.weight() > 1000 {
                return Err(ValidationError::new(
                    format!("{at}.weight"),
                    format!("must be 0 to 1000, got {}", item.weight()),
                ));
            }
            if item.base() > 100_000 {
                return Err(ValidationError::new(
                    format!("{at}.base"),
                    format!("must be 0 to 100000, got {}", item.base()),
                ));
            }
            if item.base() > 0 {
                if let Some(first) = with_base {
                    return Err(ValidationError::new(
                        format!("{at}.base"),
                        format!(
                            "only one capacity provider in a strategy can have a base; \
                             capacityProviderStrategy[{first}] has one"
                        ),
                    ));
                }
                with_base = Some(i);
            }
            if provider_kind(&item.capacity_provider)
                != provider_kind(&strategy[0].capacity_provider)
            {
                return Err(ValidationError::new(
                    format!("{at}.capacityProvider"),
                    format!(
                        "a capacity provider strategy can contain only Fargate capacity \
                         providers (FARGATE, FARGATE_SPOT) or only the cluster's own, not \
                         both: {:?} and {:?}",
                        strategy[0].capacity_provider, item.capacity_provider
                    ),
                ));
            }
        }
        if strategy.iter().all(|item| item.weight() == 0) {
            return Err(ValidationError::new(
                "capacityProviderStrategy",
                "at least one capacity provider must have a weight greater than 0",
            ));
        }
        Ok(())
    }

    /// Refuses a service that runs on Fargate (launch type FARGATE or a Fargate
    /// capacity provider) with a task definition that does not require FARGATE, in
    /// ECS's words. A definition that requires it has passed Fargate's rules (task
    /// size, awsvpc) when it was registered.
    pub fn check_capacity_against(&self, td: &TaskDefinition) -> Result<()> {
        if self.capacity_kind() != CapacityKind::Managed
            || td
                .requires_compatibilities
                .contains(&Compatibility::Fargate)
        {
            return Ok(());
        }
        let field = if self.capacity_provider_strategy.is_empty() {
            "launchType".to_string()
        } else {
            "capacityProviderStrategy[0].capacityProvider".to_string()
        };
        Err(ValidationError::new(
            field,
            format!(
                "Task definition does not support launch_type FARGATE. Add FARGATE to \
                 requiresCompatibilities of {} (with a task-level cpu and memory Fargate \
                 offers and networkMode awsvpc)",
                td.family
            ),
        ))
    }
}

/// A capacity provider's name: FARGATE or FARGATE_SPOT, or the name of one of the
/// cluster's own (1-255 letters, digits, `_` and `-`, not starting with `aws`, `ecs`
/// or `fargate`, as CreateCapacityProvider requires).
fn check_provider_name(field: &str, name: &str) -> Result<()> {
    if FARGATE_PROVIDERS.contains(&name) {
        return Ok(());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let lower = name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 255
        || !name.chars().all(allowed)
        || ["aws", "ecs", "fargate"]
            .iter()
            .any(|p| lower.starts_with(p))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "must be FARGATE, FARGATE_SPOT or the name of one of the cluster's own \
                 capacity providers (1-255 letters, digits, _ and -, not starting with \
                 aws, ecs or fargate), got {name:?}"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(extra: serde_json::Value) -> Service {
        let mut v = serde_json::json!({"serviceName": "web", "taskDefinition": "web"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn refused(extra: serde_json::Value) -> ValidationError {
        service(extra).validate().unwrap_err()
    }

    #[test]
    fn a_strategy_follows_create_services_rules() {
        let ok = service(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 4}
        ]}));
        ok.validate().unwrap();
        assert_eq!(ok.capacity_kind(), CapacityKind::Managed);
        let e = refused(serde_json::json!({"launchType": "FARGATE",
            "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]}));
        assert_eq!(e.field, "launchType");
        let e = refused(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
            {"capacityProvider": "FARGATE_SPOT", "base": 2, "weight": 1}]}));
        assert_eq!(e.field, "capacityProviderStrategy[1].base");
        assert!(e.message.contains("only one"), "{e}");
        let e = refused(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "weight": 1},
            {"capacityProvider": "my-asg", "weight": 1}]}));
        assert_eq!(e.field, "capacityProviderStrategy[1].capacityProvider");
        assert!(e.message.contains("only Fargate"), "{e}");
        let e = refused(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "base": 2}]}));
        assert_eq!(e.field, "capacityProviderStrategy");
        assert!(e.message.contains("weight greater than 0"), "{e}");
        let e = refused(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "weight": 1001}]}));
        assert_eq!(e.field, "capacityProviderStrategy[0].weight");
        let e = refused(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "ecs-pool", "weight": 1}]}));
        assert_eq!(e.field, "capacityProviderStrategy[0].capacityProvider");
        let e = refused(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "pool", "weight": 1}, {"capacityProvider": "pool", "weight": 1}]}));
        assert!(e.message.contains("twice"), "{e}");
        let e = refused(serde_json::json!({"launchType": "FARGATE",
            "schedulingStrategy": "DAEMON"}));
        assert_eq!(e.field, "schedulingStrategy");
        let own = service(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "on-demand", "weight": 1, "base": 2},
            {"capacityProvider": "spot-asg", "weight": 3}]}));
        own.validate().unwrap();
        assert_eq!(own.capacity_kind(), CapacityKind::Instances);
    }

    #[test]
    fn fargate_needs_a_definition_that_requires_fargate() {
        let td = |compat: &str| -> TaskDefinition {
            serde_json::from_value(serde_json::json!({
                "family": "web", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
                "requiresCompatibilities": [compat],
                "containerDefinitions": [{"name": "web", "image": "x"}]
            }))
            .unwrap()
        };
        let fargate = service(serde_json::json!({"launchType": "FARGATE"}));
        fargate.check_capacity_against(&td("FARGATE")).unwrap();
        let e = fargate.check_capacity_against(&td("EC2")).unwrap_err();
        assert_eq!(e.field, "launchType");
        assert!(
            e.message
                .starts_with("Task definition does not support launch_type FARGATE"),
            "{e}"
        );
        let spot = service(serde_json::json!({"capacityProviderStrategy": [
            {"capacityProvider": "FARGATE_SPOT", "weight": 1}]}));
        let e = spot.check_capacity_against(&td("EC2")).unwrap_err();
        assert_eq!(e.field, "capacityProviderStrategy[0].capacityProvider");
        // EC2 takes either definition.
        let ec2 = service(serde_json::json!({}));
        ec2.check_capacity_against(&td("EC2")).unwrap();
        ec2.check_capacity_against(&td("FARGATE")).unwrap();
    }
}
