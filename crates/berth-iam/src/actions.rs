//! The IAM action an AWS-protocol request asks for, shared by the native API's guard and
//! the AWS front door.
//!
//! - JSON protocols name the operation in `X-Amz-Target: <targetPrefix>.<Operation>`:
//!   `AmazonEC2ContainerServiceV20141113.CreateService` is `ecs:CreateService`,
//!   `AnyScaleFrontendService.PutScalingPolicy` is
//!   `application-autoscaling:PutScalingPolicy`.
//! - The query protocol (ELBv2) names it in the form field `Action`, with
//!   `Version=2015-12-01`: `Action=CreateTargetGroup` is
//!   `elasticloadbalancing:CreateTargetGroup`.

/// `(X-Amz-Target prefix, IAM service prefix)` of the JSON protocols berth speaks.
pub const JSON_TARGETS: [(&str, &str); 3] = [
    ("AmazonEC2ContainerServiceV20141113", "ecs"),
    ("AnyScaleFrontendService", "application-autoscaling"),
    ("Route53AutoNaming_v20170314", "servicediscovery"),
];

/// `(API version, IAM service prefix)` of the query protocols berth speaks.
pub const QUERY_VERSIONS: [(&str, &str); 1] = [("2015-12-01", "elasticloadbalancing")];

fn operation_name(op: &str) -> Option<&str> {
    (!op.is_empty() && op.chars().all(|c| c.is_ascii_alphanumeric())).then_some(op)
}

/// The IAM action of an `X-Amz-Target` header; `None` when the prefix is not one berth
/// serves or the operation is not a name.
pub fn action_for_target(target: &str) -> Option<String> {
    let (prefix, op) = target.trim().split_once('.')?;
    let (_, service) = JSON_TARGETS.iter().find(|(p, _)| *p == prefix)?;
    Some(format!("{service}:{}", operation_name(op)?))
}

/// The IAM action of a query-protocol request's `Action` and `Version` fields.
pub fn action_for_query(action: &str, version: &str) -> Option<String> {
    let (_, service) = QUERY_VERSIONS.iter().find(|(v, _)| *v == version)?;
    Some(format!("{service}:{}", operation_name(action)?))
}

/// The `Action` and `Version` fields of a form body (`application/x-www-form-urlencoded`)
/// and their IAM action; `None` when either is missing, unknown, or given more than once
/// (the front door acts on the first `Action`; a body naming two could be authorized for
/// one and act as the other). A percent-encoded field name or value is never a name of
/// an operation, so it is no action here either.
pub fn action_for_form(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let (mut action, mut version) = (None, None);
    for pair in text.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "Action" => &mut action,
            "Version" => &mut version,
            n if n.contains('%') || n.contains('+') => return None,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    action_for_query(action?, version?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_targets_map_to_their_service() {
        assert_eq!(
            action_for_target("AmazonEC2ContainerServiceV20141113.CreateService").as_deref(),
            Some("ecs:CreateService")
        );
        assert_eq!(
            action_for_target("AnyScaleFrontendService.DescribeScalingPolicies").as_deref(),
            Some("application-autoscaling:DescribeScalingPolicies")
        );
        assert_eq!(action_for_target("DynamoDB_20120810.GetItem"), None);
        assert_eq!(action_for_target("AnyScaleFrontendService."), None);
        assert_eq!(action_for_target("AnyScaleFrontendService.a:b"), None);
        assert_eq!(action_for_target("noprefix"), None);
    }

    #[test]
    fn query_actions_need_the_elbv2_version() {
        assert_eq!(
            action_for_form(b"Action=CreateTargetGroup&Version=2015-12-01&Name=web").as_deref(),
            Some("elasticloadbalancing:CreateTargetGroup")
        );
        assert_eq!(
            action_for_form(b"Action=CreateLoadBalancer&Version=2012-06-01"),
            None
        );
        assert_eq!(action_for_form(b"Version=2015-12-01"), None);
        assert_eq!(
            action_for_form(
                b"Action=DeleteTargetGroup&Version=2015-12-01&Action=DescribeTargetGroups"
            ),
            None,
            "two actions"
        );
        assert_eq!(
            action_for_form(
                b"Action=DescribeTargetGroups&Version=2015-12-01&Acti%6Fn=DeleteTargetGroup"
            ),
            None,
            "an encoded field name"
        );
        assert_eq!(action_for_query("Describe%20X", "2015-12-01"), None);
    }
}
