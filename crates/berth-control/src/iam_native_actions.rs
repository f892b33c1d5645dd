//! The IAM action and resource ARN of each native `/v1` route, for the request guard
//! ([`crate::iam_auth`]).
//!
//! Reads are ECS's, ELBv2's, Application Auto Scaling's, Cloud Map's and Secrets
//! Manager's `Describe*`,
//! `List*` and `Get*` actions; writes their `Create*`, `Update*`/`Modify*`/`Put*`,
//! `Delete*`. A `PUT` of a named resource and `POST /v1/apply` create or update, and
//! which one is only known inside apply's batch, so they need both the create and the
//! update action (for apply: of every resource in the stack). A route this table does not
//! know needs `berth:UnknownRoute`, which only a `*` policy allows.

use berth_model::arn;
use berth_model::stack::Stack;

use crate::iam_store::{entity_arn, EntityKind};

/// An action and the resource it is asked on.
pub type Need = (String, String);

fn need(action: &str, resource: impl Into<String>) -> Need {
    (action.to_string(), resource.into())
}

fn any(action: &str) -> Need {
    need(action, "*")
}

fn scaling_resource(cluster: &str, service: &str) -> String {
    format!(
        "arn:berth:application-autoscaling:{}:{}:scalable-target/service/{cluster}/{service}",
        arn::REGION,
        arn::ACCOUNT
    )
}

fn namespace_arn(name: &str) -> String {
    format!(
        "arn:berth:servicediscovery:{}:{}:namespace/{name}",
        arn::REGION,
        arn::ACCOUNT
    )
}

/// What a stack applied through `POST /v1/apply` needs.
pub fn apply_needs(stack: &Stack) -> Vec<Need> {
    let mut out = Vec::new();
    for c in &stack.clusters {
        let a = arn::cluster(&c.cluster_name);
        out.push(need("ecs:CreateCluster", a.clone()));
        out.push(need("ecs:UpdateCluster", a));
    }
    if !stack.task_definitions.is_empty() {
        out.push(any("ecs:RegisterTaskDefinition"));
    }
    for s in &stack.services {
        let a = arn::service(s.cluster_name(), &s.service_name);
        out.push(need("ecs:CreateService", a.clone()));
        out.push(need("ecs:UpdateService", a));
    }
    for t in &stack.target_groups {
        let a = arn::target_group(&t.target_group_name);
        out.push(need("elasticloadbalancing:CreateTargetGroup", a.clone()));
        out.push(need("elasticloadbalancing:ModifyTargetGroup", a));
    }
    for lb in &stack.load_balancers {
        let a = arn::load_balancer(lb.kind.arn_kind(), &lb.load_balancer_name);
        out.push(need("elasticloadbalancing:CreateLoadBalancer", a.clone()));
        out.push(need("elasticloadbalancing:ModifyLoadBalancerAttributes", a));
    }
    for n in &stack.namespaces {
        out.push(need(
            "servicediscovery:CreatePrivateDnsNamespace",
            namespace_arn(&n.name),
        ));
    }
    for t in &stack.scalable_targets {
        out.push(need(
            "application-autoscaling:RegisterScalableTarget",
            scaling_resource_of(&t.resource_id),
        ));
    }
    for p in &stack.scaling_policies {
        out.push(need(
            "application-autoscaling:PutScalingPolicy",
            scaling_resource_of(&p.resource_id),
        ));
    }
    for a in &stack.scheduled_actions {
        out.push(need(
            "application-autoscaling:PutScheduledAction",
            scaling_resource_of(&a.resource_id),
        ));
    }
    out
}

fn scaling_resource_of(resource_id: &str) -> String {
    format!(
        "arn:berth:application-autoscaling:{}:{}:scalable-target/{resource_id}",
        arn::REGION,
        arn::ACCOUNT
    )
}

/// What `method` on the native `path` needs. `body` is read only for `POST /v1/apply`;
/// a body that is not a stack needs nothing more than authentication, since apply then
/// refuses it with the same parser and changes nothing.
pub fn native_needs(method: &str, path: &str, body: &[u8]) -> Vec<Need> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let user = |n: &str| entity_arn(EntityKind::User, n);
    let role = |n: &str| entity_arn(EntityKind::Role, n);
    let m = method;
    let v = match segs.as_slice() {
        ["v1", "apply"] if m == "POST" => {
            return serde_json::from_slice::<Stack>(body)
                .map(|s| apply_needs(&s))
                .unwrap_or_default();
        }
        // The console's: who the caller is (any authenticated principal may ask), the
        // change stream and a service's metrics history (reads), a stack file applied
        // as written (as `POST /v1/apply`).
        ["v1", "whoami"] if m == "GET" => vec![],
        ["v1", "events", "stream"] if m == "GET" => vec![
            any("ecs:DescribeClusters"),
            any("ecs:DescribeServices"),
            any("ecs:DescribeTasks"),
        ],
        ["v1", "clusters", c, "services", s, "metrics-history"] if m == "GET" => {
            vec![need("ecs:DescribeServices", arn::service(c, s))]
        }
        ["v1", "stack-files", "apply"] if m == "POST" => {
            return std::str::from_utf8(body)
                .ok()
                .and_then(|text| Stack::from_yaml(text).ok())
                .map(|s| apply_needs(&s))
                .unwrap_or_default();
        }
        ["v1", "clusters"] => match m {
            "GET" => vec![any("ecs:ListClusters")],
            _ => vec![any("ecs:CreateCluster")],
        },
        ["v1", "clusters", c] => match m {
            "GET" => vec![need("ecs:DescribeClusters", arn::cluster(c))],
            _ => vec![need("ecs:DeleteCluster", arn::cluster(c))],
        },
        ["v1", "task-definitions"] => match m {
            "GET" => vec![any("ecs:ListTaskDefinitions")],
            _ => vec![any("ecs:RegisterTaskDefinition")],
        },
        ["v1", "task-definitions", _] => match m {
            "GET" => vec![any("ecs:DescribeTaskDefinition")],
            _ => vec![any("ecs:DeregisterTaskDefinition")],
        },
        ["v1", "services"] => vec![any("ecs:ListServices")],
        ["v1", "clusters", c, "services", s] => {
            let a = arn::service(c, s);
            match m {
                "GET" => vec![need("ecs:DescribeServices", a)],
                "DELETE" => vec![need("ecs:DeleteService", a)],
                _ => vec![
                    need("ecs:CreateService", a.clone()),
                    need("ecs:UpdateService", a),
                ],
            }
        }
        ["v1", "clusters", c, "services", s, "deployments"] => {
            vec![need("ecs:UpdateService", arn::service(c, s))]
        }
        ["v1", "tasks"] => vec![any("ecs:ListTasks")],
        ["v1", "clusters", c, "tasks", t] => vec![need("ecs:DescribeTasks", arn::task(c, t))],
        ["v1", "clusters", c, "tasks", t, "stop"] => vec![need("ecs:StopTask", arn::task(c, t))],
        ["v1", "clusters", c, "tasks", t, "logs"] => {
            vec![need("logs:GetLogEvents", arn::task(c, t))]
        }
        ["v1", "clusters", c, "tasks", t, "exec"] => {
            vec![need("ecs:ExecuteCommand", arn::task(c, t))]
        }
        ["v1", "container-instances"] => vec![any("ecs:ListContainerInstances")],
        ["v1", "clusters", c, "container-instances", i, "state"] => vec![need(
            "ecs:UpdateContainerInstancesState",
            arn::container_instance(c, i),
        )],
        ["v1", "target-groups"] => vec![any("elasticloadbalancing:DescribeTargetGroups")],
        ["v1", "target-groups", n] => {
            let a = arn::target_group(n);
            match m {
                "GET" => vec![need("elasticloadbalancing:DescribeTargetGroups", a)],
                "DELETE" => vec![need("elasticloadbalancing:DeleteTargetGroup", a)],
                _ => vec![
                    need("elasticloadbalancing:CreateTargetGroup", a.clone()),
                    need("elasticloadbalancing:ModifyTargetGroup", a),
                ],
            }
        }
        ["v1", "target-groups", n, "targets"] => vec![need(
            "elasticloadbalancing:DescribeTargetHealth",
            arn::target_group(n),
        )],
        ["v1", "load-balancers"] => vec![any("elasticloadbalancing:DescribeLoadBalancers")],
        ["v1", "load-balancers", n] => {
            let a = load_balancer_by_name(n);
            match m {
                "GET" => vec![need("elasticloadbalancing:DescribeLoadBalancers", a)],
                "DELETE" => vec![need("elasticloadbalancing:DeleteLoadBalancer", a)],
                _ => vec![
                    need("elasticloadbalancing:CreateLoadBalancer", a.clone()),
                    need("elasticloadbalancing:ModifyLoadBalancerAttributes", a),
                ],
            }
        }
        ["v1", "scalable-targets"] => {
            vec![any("application-autoscaling:DescribeScalableTargets")]
        }
        ["v1", "clusters", c, "services", s, "scalable-target"] => {
            let a = scaling_resource(c, s);
            match m {
                "GET" => vec![need("application-autoscaling:DescribeScalableTargets", a)],
                "DELETE" => vec![need("application-autoscaling:DeregisterScalableTarget", a)],
                _ => vec![need("application-autoscaling:RegisterScalableTarget", a)],
            }
        }
        ["v1", "scaling-policies"] => vec![any("application-autoscaling:DescribeScalingPolicies")],
        ["v1", "clusters", c, "services", s, "scaling-policies", _] => {
            let a = scaling_resource(c, s);
            match m {
                "GET" => vec![need("application-autoscaling:DescribeScalingPolicies", a)],
                "DELETE" => vec![need("application-autoscaling:DeleteScalingPolicy", a)],
                _ => vec![need("application-autoscaling:PutScalingPolicy", a)],
            }
        }
        ["v1", "scheduled-actions"] => {
            vec![any("application-autoscaling:DescribeScheduledActions")]
        }
        ["v1", "clusters", c, "services", s, "scheduled-actions", _] => {
            let a = scaling_resource(c, s);
            match m {
                "GET" => vec![need("application-autoscaling:DescribeScheduledActions", a)],
                "DELETE" => vec![need("application-autoscaling:DeleteScheduledAction", a)],
                _ => vec![need("application-autoscaling:PutScheduledAction", a)],
            }
        }
        ["v1", "clusters", c, "services", s, "scaling-activities"] => vec![need(
            "application-autoscaling:DescribeScalingActivities",
            scaling_resource(c, s),
        )],
        ["v1", "namespaces"] => vec![any("servicediscovery:ListNamespaces")],
        ["v1", "namespaces", n] => match m {
            "GET" => vec![need("servicediscovery:GetNamespace", namespace_arn(n))],
            _ => vec![need("servicediscovery:DeleteNamespace", namespace_arn(n))],
        },
        ["v1", "clusters", c, "services", s, "endpoints"] => vec![need(
            "servicediscovery:DiscoverInstances",
            arn::service(c, s),
        )],
        ["v1", "iam", "users"] => match m {
            "GET" => vec![any("iam:ListUsers")],
            _ => vec![any("iam:CreateUser")],
        },
        ["v1", "iam", "users", u] => match m {
            "GET" => vec![need("iam:GetUser", user(u))],
            _ => vec![need("iam:DeleteUser", user(u))],
        },
        ["v1", "iam", "users", u, "policies", _] => match m {
            "DELETE" => vec![need("iam:DeleteUserPolicy", user(u))],
            _ => vec![need("iam:PutUserPolicy", user(u))],
        },
        ["v1", "iam", "users", u, "access-keys"] => match m {
            "GET" => vec![need("iam:ListAccessKeys", user(u))],
            _ => vec![need("iam:CreateAccessKey", user(u))],
        },
        ["v1", "iam", "users", u, "access-keys", _] => {
            vec![need("iam:DeleteAccessKey", user(u))]
        }
        ["v1", "iam", "roles"] => match m {
            "GET" => vec![any("iam:ListRoles")],
            _ => vec![any("iam:CreateRole")],
        },
        ["v1", "iam", "roles", r] => match m {
            "GET" => vec![need("iam:GetRole", role(r))],
            _ => vec![need("iam:DeleteRole", role(r))],
        },
        ["v1", "iam", "roles", r, "policies", _] => match m {
            "DELETE" => vec![need("iam:DeleteRolePolicy", role(r))],
            _ => vec![need("iam:PutRolePolicy", role(r))],
        },
        ["v1", "secrets"] if m == "GET" => vec![any("secretsmanager:ListSecrets")],
        ["v1", "secrets", name @ ..] if !name.is_empty() => {
            let a = arn::secret(&name.join("/"));
            match m {
                "GET" => vec![need("secretsmanager:GetSecretValue", a)],
                "DELETE" => vec![need("secretsmanager:DeleteSecret", a)],
                _ => vec![
                    need("secretsmanager:CreateSecret", a.clone()),
                    need("secretsmanager:PutSecretValue", a),
                ],
            }
        }
        _ => vec![any("berth:UnknownRoute")],
    };
    v
}

/// A load balancer named in a native path: the API names it without its type, so its
/// resource is written for an application load balancer unless the name is found to be a
/// network one at apply; policies that must cover both use `loadbalancer/*/<name>`.
fn load_balancer_by_name(name: &str) -> String {
    arn::load_balancer("app", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_ecs_elb_autoscaling_and_iam_actions() {
        let svc = "arn:berth:ecs:local:000000000000:service/default/web";
        assert_eq!(
            native_needs("GET", "/v1/clusters/default/services/web", b""),
            vec![need("ecs:DescribeServices", svc)]
        );
        assert_eq!(
            native_needs("PUT", "/v1/clusters/default/services/web", b""),
            vec![
                need("ecs:CreateService", svc),
                need("ecs:UpdateService", svc)
            ]
        );
        assert_eq!(
            native_needs("POST", "/v1/clusters/default/services/web/deployments", b""),
            vec![need("ecs:UpdateService", svc)]
        );
        assert_eq!(
            native_needs("GET", "/v1/services", b""),
            vec![any("ecs:ListServices")]
        );
        assert_eq!(
            native_needs("DELETE", "/v1/target-groups/web", b"")[0].0,
            "elasticloadbalancing:DeleteTargetGroup"
        );
        assert_eq!(
            native_needs("PUT", "/v1/clusters/c/services/s/scaling-policies/p", b"")[0],
            need(
                "application-autoscaling:PutScalingPolicy",
                "arn:berth:application-autoscaling:local:000000000000:scalable-target/service/c/s"
            )
        );
        assert_eq!(
            native_needs("POST", "/v1/iam/users/bob/access-keys", b""),
            vec![need(
                "iam:CreateAccessKey",
                "arn:berth:iam::000000000000:user/bob"
            )]
        );
        assert_eq!(
            native_needs("GET", "/v1/nothing/here", b""),
            vec![any("berth:UnknownRoute")]
        );
    }

    #[test]
    fn secret_routes_need_secrets_managers_actions_on_the_secrets_arn() {
        let arn = "arn:berth:secretsmanager:local:000000000000:secret:prod/db";
        assert_eq!(
            native_needs("GET", "/v1/secrets/prod/db", b""),
            vec![need("secretsmanager:GetSecretValue", arn)]
        );
        assert_eq!(
            native_needs("PUT", "/v1/secrets/prod/db", b""),
            vec![
                need("secretsmanager:CreateSecret", arn),
                need("secretsmanager:PutSecretValue", arn)
            ]
        );
        assert_eq!(
            native_needs("DELETE", "/v1/secrets/prod/db", b""),
            vec![need("secretsmanager:DeleteSecret", arn)]
        );
        assert_eq!(
            native_needs("GET", "/v1/secrets", b""),
            vec![any("secretsmanager:ListSecrets")]
        );
        assert_eq!(
            native_needs("POST", "/v1/secrets", b""),
            vec![any("berth:UnknownRoute")]
        );
    }

    #[test]
    fn apply_needs_create_and_update_of_each_resource() {
        let stack = r#"{"clusters":[{"clusterName":"prod"}],"services":[{"serviceName":"web","cluster":"prod","taskDefinition":"web"}]}"#;
        let needs = native_needs("POST", "/v1/apply", stack.as_bytes());
        let actions: Vec<&str> = needs.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            actions,
            [
                "ecs:CreateCluster",
                "ecs:UpdateCluster",
                "ecs:CreateService",
                "ecs:UpdateService"
            ]
        );
        assert_eq!(
            needs[2].1,
            "arn:berth:ecs:local:000000000000:service/prod/web"
        );
        assert!(native_needs("POST", "/v1/apply", b"{not json").is_empty());
        let yaml = "clusters:\n- clusterName: prod\nservices:\n- serviceName: web\n  cluster: prod\n  taskDefinition: web\n";
        assert_eq!(
            native_needs("POST", "/v1/stack-files/apply", yaml.as_bytes()),
            needs,
            "a stack file needs what the same stack through /v1/apply needs"
        );
    }

    #[test]
    fn the_consoles_routes_are_reads_or_apply() {
        assert!(native_needs("GET", "/v1/whoami", b"").is_empty());
        let stream = native_needs("GET", "/v1/events/stream", b"");
        assert!(stream
            .iter()
            .all(|(a, r)| a.starts_with("ecs:Describe") && r == "*"));
        assert_eq!(
            native_needs("GET", "/v1/clusters/c/services/s/metrics-history", b""),
            vec![need(
                "ecs:DescribeServices",
                "arn:berth:ecs:local:000000000000:service/c/s"
            )]
        );
        assert_eq!(
            native_needs("POST", "/v1/whoami", b""),
            vec![any("berth:UnknownRoute")]
        );
    }
}
