//! ARN-shaped identifiers: `arn:berth:<service>:<region>:<account>:<resource>`.
//!
//! They have the shape of AWS ARNs so an AWS-protocol front door can be added without
//! translating ids. berth runs in one region and one account, named by the constants.

/// The region every berth ARN carries.
pub const REGION: &str = "local";
/// The account every berth ARN carries.
pub const ACCOUNT: &str = "000000000000";

fn ecs(resource: &str) -> String {
    format!("arn:berth:ecs:{REGION}:{ACCOUNT}:{resource}")
}

fn elb(resource: &str) -> String {
    format!("arn:berth:elasticloadbalancing:{REGION}:{ACCOUNT}:{resource}")
}

pub fn cluster(name: &str) -> String {
    ecs(&format!("cluster/{name}"))
}

pub fn task_definition(family: &str, revision: u32) -> String {
    ecs(&format!("task-definition/{family}:{revision}"))
}

pub fn service(cluster: &str, name: &str) -> String {
    ecs(&format!("service/{cluster}/{name}"))
}

pub fn task(cluster: &str, id: &str) -> String {
    ecs(&format!("task/{cluster}/{id}"))
}

pub fn container(cluster: &str, task_id: &str, container: &str) -> String {
    ecs(&format!("container/{cluster}/{task_id}/{container}"))
}

pub fn container_instance(cluster: &str, id: &str) -> String {
    ecs(&format!("container-instance/{cluster}/{id}"))
}

pub fn load_balancer(kind: &str, name: &str) -> String {
    elb(&format!("loadbalancer/{kind}/{name}"))
}

pub fn listener(kind: &str, lb: &str, port: u32) -> String {
    elb(&format!("listener/{kind}/{lb}/{port}"))
}

pub fn listener_rule(kind: &str, lb: &str, port: u32, priority: u32) -> String {
    elb(&format!("listener-rule/{kind}/{lb}/{port}/{priority}"))
}

pub fn target_group(name: &str) -> String {
    elb(&format!("targetgroup/{name}"))
}

/// A secret of berth's secret store, in Secrets Manager's form (without the random
/// suffix AWS adds: a name is unique in berth's one store).
pub fn secret(name: &str) -> String {
    format!("arn:berth:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}")
}

/// The last path segment of an ARN (a task's id, a cluster's name, ...).
pub fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The resource part after `<service>:<region>:<account>:`, e.g. `service/default/web`.
pub fn resource(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" || parts.next()? != "berth" {
        return None;
    }
    parts.nth(3)
}

/// `(cluster, instance id)` of a container instance ARN.
pub fn container_instance_parts(arn: &str) -> Option<(&str, &str)> {
    resource(arn)?
        .strip_prefix("container-instance/")?
        .split_once('/')
}

/// `(cluster, task id)` of a task ARN.
pub fn task_parts(arn: &str) -> Option<(&str, &str)> {
    resource(arn)?.strip_prefix("task/")?.split_once('/')
}

/// Parses `family:revision` out of a task definition ARN or a `family:revision` string.
pub fn parse_family_revision(s: &str) -> Option<(&str, Option<u32>)> {
    let s = match resource(s) {
        Some(r) => r.strip_prefix("task-definition/")?,
        None => s,
    };
    match s.rsplit_once(':') {
        Some((family, rev)) => Some((family, Some(rev.parse().ok()?))),
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_and_task_arns_give_their_cluster_and_id() {
        assert_eq!(
            container_instance_parts(&container_instance("Prod", "i-1")),
            Some(("Prod", "i-1"))
        );
        assert_eq!(
            task_parts(&task("default", "abc")),
            Some(("default", "abc"))
        );
        assert_eq!(container_instance_parts(&task("default", "abc")), None);
        assert_eq!(task_parts("not an arn"), None);
    }

    #[test]
    fn round_trips() {
        let a = service("default", "web");
        assert_eq!(a, "arn:berth:ecs:local:000000000000:service/default/web");
        assert_eq!(resource(&a), Some("service/default/web"));
        assert_eq!(last_segment(&a), "web");
        let td = task_definition("whoami", 3);
        assert_eq!(parse_family_revision(&td), Some(("whoami", Some(3))));
        assert_eq!(parse_family_revision("whoami"), Some(("whoami", None)));
        assert_eq!(parse_family_revision("whoami:x"), None);
    }
}
