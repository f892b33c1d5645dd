//! DescribeTargetHealth, RegisterTargets, DeregisterTargets.
//!
//! berth registers the tasks of the services that name a target group itself (and
//! drains them before they stop). RegisterTargets and DeregisterTargets are for
//! addresses that are not tasks, in `ip` target groups
//! (`berth_control::external_targets`).

use serde_json::Value;

use super::elb_error;
use berth_control::external_targets::{self, TargetRef};
use berth_control::Db;
use berth_model::elb::TargetGroup;

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
        // An address that drained is gone (its record waits for the next call).
        .filter(|t| !t["taskArn"].is_null() || t["drainedAt"].is_null())
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

/// The `Targets` list of a Register/DeregisterTargets request.
fn target_refs(p: &Params) -> Result<Vec<TargetRef>, AwsError> {
    let given = p.structs("Targets");
    if given.is_empty() {
        return Err(AwsError::new(
            "ValidationError",
            "Targets: required, and missing or empty",
        ));
    }
    given
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let id = t.req("Id").map_err(|_| {
                AwsError::new(
                    "ValidationError",
                    format!("Targets.member.{}.Id: required, and missing", i + 1),
                )
            })?;
            let port = t.int("Port")?.map(|n| n.clamp(0, u32::MAX as i64) as u32);
            Ok(TargetRef {
                id: id.to_string(),
                port,
            })
        })
        .collect()
}

/// The stored target group an ARN names, or `TargetGroupNotFound`.
async fn stored_group(db: &Db, arn: &str) -> Result<TargetGroup, AwsError> {
    db.target_group_by_ref(arn)
        .await
        .map_err(|e| AwsError::server("InternalFailure", e.to_string()))?
        .ok_or_else(|| {
            AwsError::new(
                "TargetGroupNotFound",
                format!("One or more target groups not found: {arn}"),
            )
        })
}

fn invalid_target(e: berth_control::ControlError) -> AwsError {
    let api = berth_control::ApiError::from(e);
    if api.status >= 500 {
        AwsError::server("InternalFailure", api.message)
    } else {
        AwsError::new("InvalidTarget", api.message)
    }
}

pub async fn register(db: &Db, p: &Params) -> Result<String, AwsError> {
    let tg = stored_group(db, p.req("TargetGroupArn")?).await?;
    let targets = target_refs(p)?;
    external_targets::register(db, &tg, &targets)
        .await
        .map_err(invalid_target)?;
    Ok(String::new())
}

pub async fn deregister(db: &Db, p: &Params) -> Result<String, AwsError> {
    let tg = stored_group(db, p.req("TargetGroupArn")?).await?;
    let targets = target_refs(p)?;
    external_targets::deregister(db, &tg, &targets)
        .await
        .map_err(invalid_target)?;
    Ok(String::new())
}
