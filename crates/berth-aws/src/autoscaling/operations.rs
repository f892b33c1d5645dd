//! The operations: each reads the wire's members, addresses the native API by the
//! resource id, and answers in the wire's names.

use serde_json::{json, Map, Value};

use super::case::{to_model, to_wire};
use super::{aas_error, check_scope, listed, page_of, parse_resource_id, service_of, service_path};
use crate::json_input::Input;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

const NAMESPACE: &str = "ecs";
const DIMENSION: &str = "ecs:service:DesiredCount";

/// The request's members as berth's model spells them, without the members the native
/// resource does not take.
fn model_body(input: &Input, drop: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in input.members() {
        if drop.contains(&k.as_str()) || v.is_null() {
            continue;
        }
        m.insert(k.clone(), v.clone());
    }
    match to_model(&Value::Object(m)) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The ResourceIds filter of a Describe call, as (cluster, service) pairs.
fn resource_filter(input: &Input) -> Result<Vec<String>, AwsError> {
    check_scope(input)?;
    let ids = input.str_list("ResourceIds")?;
    let mut out = ids;
    if let Some(id) = input.opt_str("ResourceId")? {
        out.push(id);
    }
    Ok(out)
}

fn wanted(filter: &[String], resource_id: &Value) -> bool {
    filter.is_empty() || filter.iter().any(|f| resource_id == f.as_str())
}

pub async fn register_target(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let (cluster, service) = service_of(input)?;
    input.opt_i64("MinCapacity")?;
    input.opt_i64("MaxCapacity")?;
    let path = service_path(&cluster, &service, "scalable-target");
    // Registering again updates the target: members not given keep their values.
    let mut body = match native.get(&path).await {
        Ok(existing) => existing.as_object().cloned().unwrap_or_default(),
        Err(e) if e.is_not_found() => {
            if input.raw("MinCapacity").is_none() || input.raw("MaxCapacity").is_none() {
                return Err(AwsError::validation(
                    "MinCapacity and MaxCapacity: required to register a new scalable target",
                ));
            }
            Map::new()
        }
        Err(e) => return Err(aas_error(e)),
    };
    for k in ["scalableTargetARN", "creationTime"] {
        body.remove(k);
    }
    for (k, v) in model_body(input, &["RoleARN", "Tags"]) {
        body.insert(k, v);
    }
    let stored = native
        .put(&path, &Value::Object(body))
        .await
        .map_err(aas_error)?;
    Ok(json!({ "ScalableTargetARN": stored["scalableTargetARN"] }))
}

pub async fn describe_targets(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let filter = resource_filter(input)?;
    let all = native
        .get("/v1/scalable-targets")
        .await
        .map_err(aas_error)?;
    let items: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| wanted(&filter, &t["resourceId"]))
        .map(to_wire)
        .collect();
    let (page, next) = page_of(input, items)?;
    Ok(listed("ScalableTargets", page, next))
}

pub async fn deregister_target(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let (cluster, service) = service_of(input)?;
    input.req_str("ScalableDimension")?;
    delete_or_not_found(
        native,
        &service_path(&cluster, &service, "scalable-target"),
        || format!("No scalable target registered for service namespace: ecs, resource ID: service/{cluster}/{service}, scalable dimension: ecs:service:DesiredCount"),
    )
    .await
}

pub async fn put_policy(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let (cluster, service) = service_of(input)?;
    let name = input.req_str("PolicyName")?;
    let mut body = model_body(input, &[]);
    body.entry("policyType")
        .or_insert_with(|| json!("StepScaling"));
    body.insert("serviceNamespace".into(), json!(NAMESPACE));
    body.insert("scalableDimension".into(), json!(DIMENSION));
    let stored = native
        .put(
            &service_path(
                &cluster,
                &service,
                &format!("scaling-policies/{}", enc(&name)),
            ),
            &Value::Object(body),
        )
        .await
        .map_err(aas_error)?;
    // berth evaluates its policies itself: there are no CloudWatch alarms to name.
    Ok(json!({ "PolicyARN": stored["policyARN"], "Alarms": [] }))
}

pub async fn describe_policies(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let filter = resource_filter(input)?;
    let names = input.str_list("PolicyNames")?;
    let all = native
        .get("/v1/scaling-policies")
        .await
        .map_err(aas_error)?;
    let items: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| wanted(&filter, &p["resourceId"]))
        .filter(|p| names.is_empty() || names.iter().any(|n| p["policyName"] == n.as_str()))
        .map(|p| {
            let mut w = to_wire(p);
            w["Alarms"] = json!([]);
            w
        })
        .collect();
    let (page, next) = page_of(input, items)?;
    Ok(listed("ScalingPolicies", page, next))
}

pub async fn delete_policy(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let (cluster, service) = service_of(input)?;
    let name = input.req_str("PolicyName")?;
    delete_or_not_found(
        native,
        &service_path(&cluster, &service, &format!("scaling-policies/{}", enc(&name))),
        || format!("No scaling policy found for service namespace: ecs, resource ID: service/{cluster}/{service}, scalable dimension: ecs:service:DesiredCount, policy name: {name}"),
    )
    .await
}

pub async fn describe_activities(native: &Native, input: &Input) -> Result<Value, AwsError> {
    check_scope(input)?;
    let include_not_scaled = input
        .opt_bool("IncludeNotScaledActivities")?
        .unwrap_or(false);
    let services: Vec<(String, String)> = match input.opt_str("ResourceId")? {
        Some(id) => vec![parse_resource_id(&id).ok_or_else(|| {
            AwsError::validation(format!(
                "ResourceId: must be service/<cluster>/<service>, got {id:?}"
            ))
        })?],
        None => native
            .get("/v1/scalable-targets")
            .await
            .map_err(aas_error)?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| parse_resource_id(t["resourceId"].as_str()?))
            .collect(),
    };
    let mut items = Vec::new();
    for (c, s) in services {
        let acts = match native
            .get(&service_path(&c, &s, "scaling-activities"))
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(aas_error(e)),
        };
        for a in acts.as_array().into_iter().flatten() {
            let not_scaled = a["notScaledReasons"]
                .as_array()
                .is_some_and(|r| !r.is_empty());
            if not_scaled && !include_not_scaled {
                continue;
            }
            items.push(to_wire(a));
        }
    }
    items.sort_by(|a, b| {
        b["StartTime"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a["StartTime"].as_f64().unwrap_or(0.0))
    });
    let (page, next) = page_of(input, items)?;
    Ok(listed("ScalingActivities", page, next))
}

pub async fn put_scheduled(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let (cluster, service) = service_of(input)?;
    let name = input.req_str("ScheduledActionName")?;
    let path = service_path(
        &cluster,
        &service,
        &format!("scheduled-actions/{}", enc(&name)),
    );
    // Putting an action again updates it: members not given keep their values.
    let mut body = match native.get(&path).await {
        Ok(existing) => existing.as_object().cloned().unwrap_or_default(),
        Err(e) if e.is_not_found() => {
            input.req_str("Schedule")?;
            Map::new()
        }
        Err(e) => return Err(aas_error(e)),
    };
    for k in ["scheduledActionARN", "creationTime"] {
        body.remove(k);
    }
    for (k, v) in model_body(input, &[]) {
        body.insert(k, v);
    }
    body.insert("serviceNamespace".into(), json!(NAMESPACE));
    body.insert("scalableDimension".into(), json!(DIMENSION));
    native
        .put(&path, &Value::Object(body))
        .await
        .map_err(aas_error)?;
    Ok(json!({}))
}

pub async fn describe_scheduled(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let filter = resource_filter(input)?;
    let names = input.str_list("ScheduledActionNames")?;
    let all = native
        .get("/v1/scheduled-actions")
        .await
        .map_err(aas_error)?;
    let items: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| wanted(&filter, &a["resourceId"]))
        .filter(|a| {
            names.is_empty() || names.iter().any(|n| a["scheduledActionName"] == n.as_str())
        })
        .map(to_wire)
        .collect();
    let (page, next) = page_of(input, items)?;
    Ok(listed("ScheduledActions", page, next))
}

pub async fn delete_scheduled(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let (cluster, service) = service_of(input)?;
    let name = input.req_str("ScheduledActionName")?;
    delete_or_not_found(
        native,
        &service_path(
            &cluster,
            &service,
            &format!("scheduled-actions/{}", enc(&name)),
        ),
        || format!("No scheduled action found for service namespace: ecs, resource ID: service/{cluster}/{service}, scalable dimension: ecs:service:DesiredCount, scheduled action name: {name}"),
    )
    .await
}

/// Deletes the native resource at `path`; an absent one answers `ObjectNotFoundException`
/// with `missing()`'s message, as Application Auto Scaling words it.
async fn delete_or_not_found(
    native: &Native,
    path: &str,
    missing: impl FnOnce() -> String,
) -> Result<Value, AwsError> {
    match native.delete(path).await {
        Ok(_) => Ok(json!({})),
        Err(e) if e.is_not_found() => Err(AwsError::new("ObjectNotFoundException", missing())),
        Err(e) => Err(aas_error(e)),
    }
}
