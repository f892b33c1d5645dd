//! DescribeTargetHealth, RegisterTargets, DeregisterTargets.
//!
//! berth registers the tasks of the services that name a target group itself (and
//! drains them before they stop). Targets that are not tasks are not part of berth's
//! API, so RegisterTargets and DeregisterTargets are refused with that reason.

use serde_json::Value;

use super::elb_error;
use super::form::Params;
use super::target_groups;
use super::xml::Xml;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

pub async fn describe_health(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("TargetGroupArn")?;
    let tg = target_groups::get(native, arn).await?;
    let name = tg["targetGroupName"].as_str().unwrap_or("");
    let targets = native
        .get(&format!("/v1/target-groups/{}/targets", enc(name)))
        .await
        .map_err(elb_error)?;
    let wanted: Vec<(String, Option<i64>)> = p
        .structs("Targets")
        .iter()
        .map(|t| Ok((t.req("Id")?.to_string(), t.int("Port")?)))
        .collect::<Result<_, AwsError>>()?;
    let selected: Vec<&Value> = targets
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|(id, port)| t["id"] == id.as_str() && port.is_none_or(|p| t["port"] == p))
        })
        .collect();
    let health_port = tg["healthCheckPort"].as_str().unwrap_or("traffic-port");
    let mut x = Xml::new();
    x.members("TargetHealthDescriptions", selected, |x, t| {
        x.open("Target");
        x.opt("Id", t["id"].as_str());
        x.opt("Port", t["port"].as_u64());
        x.close("Target");
        let port = match health_port {
            "traffic-port" => t["port"].as_u64().map(|p| p.to_string()),
            p => Some(p.to_string()),
        };
        x.opt("HealthCheckPort", port);
        let h = &t["targetHealth"];
        x.open("TargetHealth");
        x.opt("State", h["state"].as_str());
        x.opt("Reason", h["reason"].as_str());
        x.opt("Description", h["description"].as_str());
        x.close("TargetHealth");
    });
    Ok(x.finish())
}

fn refused(action: &str) -> AwsError {
    AwsError::new(
        "InvalidTarget",
        format!("{action}: berth registers the tasks of the services whose loadBalancers name the target group, and drains them before they stop; targets that are not tasks are not supported"),
    )
}

pub async fn register(native: &Native, p: &Params) -> Result<String, AwsError> {
    target_groups::get(native, p.req("TargetGroupArn")?).await?;
    Err(refused("RegisterTargets"))
}

pub async fn deregister(native: &Native, p: &Params) -> Result<String, AwsError> {
    target_groups::get(native, p.req("TargetGroupArn")?).await?;
    Err(refused("DeregisterTargets"))
}
