//! CreateService, UpdateService, DescribeServices, ListServices, DeleteService.
//!
//! berth's Service takes every member of ECS's CreateService under the same names, so
//! a create hands the request on as the service, and an update sets the members it
//! names on the stored service and applies it again; with `forceNewDeployment` it then
//! forces a new deployment (`POST .../deployments`) unless the task definition changed.

use serde_json::{json, Value};

use super::{cluster_of, ecs_error, failure, last_segment, listed, page_of};
use crate::json_input::Input;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

fn path(cluster: &str, name: &str) -> String {
    format!("/v1/clusters/{}/services/{}", enc(cluster), enc(name))
}

/// A service as ECS describes it: berth's Service, without the stack file's `cluster`
/// (ECS answers `clusterArn`), with the lists ECS always returns.
pub fn described(mut s: Value) -> Value {
    if let Some(m) = s.as_object_mut() {
        m.remove("cluster");
        for list in [
            "loadBalancers",
            "serviceRegistries",
            "events",
            "deployments",
        ] {
            m.entry(list).or_insert_with(|| json!([]));
        }
    }
    s
}

/// The stored service, or `ServiceNotFoundException`.
async fn get(native: &Native, cluster: &str, name: &str) -> Result<Value, AwsError> {
    native.get(&path(cluster, name)).await.map_err(|e| {
        if e.is_not_found() {
            AwsError::new("ServiceNotFoundException", "Service not found.")
        } else {
            ecs_error(e)
        }
    })
}

pub async fn create(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let name = input.req_str("serviceName")?;
    input.req_str("taskDefinition")?;
    input.opt_i64("desiredCount")?;
    let cluster = cluster_of(native, input).await?;
    match native.get(&path(&cluster, &name)).await {
        Ok(existing) if existing["status"] == "ACTIVE" => {
            return Err(AwsError::invalid("Creation of service was not idempotent."))
        }
        Ok(existing) => {
            return Err(AwsError::invalid(format!(
                "serviceName: service {name:?} is {} (being deleted); wait until it is gone",
                existing["status"].as_str().unwrap_or("")
            )))
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(ecs_error(e)),
    }
    let mut body = input.members().clone();
    body.remove("cluster");
    let s = native
        .put(&path(&cluster, &name), &Value::Object(body))
        .await
        .map_err(ecs_error)?;
    Ok(json!({ "service": described(s) }))
}

/// Members of UpdateService that are not members of the service.
const UPDATE_ONLY: &[&str] = &["cluster", "service", "forceNewDeployment"];

pub async fn update(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let name = last_segment(&input.req_str("service")?).to_string();
    input.opt_i64("desiredCount")?;
    input.opt_str("taskDefinition")?;
    input.opt_bool("forceNewDeployment")?;
    input.opt_object("deploymentConfiguration")?;
    let cluster = cluster_of(native, input).await?;
    let mut svc = get(native, &cluster, &name).await?;
    if svc["status"] != "ACTIVE" {
        return Err(AwsError::new(
            "ServiceNotActiveException",
            "Service was not ACTIVE.",
        ));
    }
    // forceNewDeployment starts a new deployment unless the same call changes the task
    // definition, which starts one anyway.
    let force = match input.opt_bool("forceNewDeployment")? {
        Some(true) => match input.opt_str("taskDefinition")? {
            Some(r) => {
                let new_definition =
                    super::task_definitions::get(native, &r).await?["taskDefinitionArn"].clone();
                let stored = svc["taskDefinition"].as_str().unwrap_or_default();
                let old_definition = super::task_definitions::get(native, stored)
                    .await
                    .ok()
                    .map(|d| d["taskDefinitionArn"].clone());
                old_definition == Some(new_definition)
            }
            None => true,
        },
        _ => false,
    };
    for (k, v) in input.members() {
        if UPDATE_ONLY.contains(&k.as_str()) || v.is_null() {
            continue;
        }
        if k == "deploymentConfiguration" {
            // The members given replace the stored ones; the others stay.
            let dc = svc
                .as_object_mut()
                .expect("a service is an object")
                .entry("deploymentConfiguration")
                .or_insert_with(|| json!({}));
            for (dk, dv) in v.as_object().into_iter().flatten() {
                dc[dk] = dv.clone();
            }
            continue;
        }
        svc[k] = v.clone();
    }
    let mut s = native
        .put(&path(&cluster, &name), &svc)
        .await
        .map_err(ecs_error)?;
    if force {
        s = native
            .post(
                &format!("{}/deployments", path(&cluster, &name)),
                &json!({}),
            )
            .await
            .map_err(ecs_error)?;
    }
    Ok(json!({ "service": described(s) }))
}

pub async fn describe(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let wanted = input.req_str_list("services")?;
    if wanted.len() > 10 {
        return Err(input.invalid(format!(
            "services: at most 10 per call, got {}",
            wanted.len()
        )));
    }
    let cluster = cluster_of(native, input).await?;
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for w in &wanted {
        match native.get(&path(&cluster, last_segment(w))).await {
            Ok(s) => services.push(described(s)),
            Err(e) if e.is_not_found() => failures.push(failure(
                &berth_model::arn::service(&cluster, last_segment(w)),
                "MISSING",
            )),
            Err(e) => return Err(ecs_error(e)),
        }
    }
    Ok(json!({ "services": services, "failures": failures }))
}

pub async fn list(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let cluster = cluster_of(native, input).await?;
    let launch_type = input.opt_str("launchType")?;
    let strategy = input.opt_str("schedulingStrategy")?;
    let all = native
        .get(&format!("/v1/services?cluster={}", enc(&cluster)))
        .await
        .map_err(ecs_error)?;
    let arns: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["status"] != "INACTIVE")
        .filter(|s| launch_type.as_deref().is_none_or(|l| s["launchType"] == l))
        .filter(|s| {
            strategy
                .as_deref()
                .is_none_or(|st| s["schedulingStrategy"] == st)
        })
        .map(|s| s["serviceArn"].clone())
        .collect();
    let (page, next) = page_of(input, arns)?;
    Ok(listed("serviceArns", page, next))
}

pub async fn delete(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let name = last_segment(&input.req_str("service")?).to_string();
    let force = input.opt_bool("force")?.unwrap_or(false);
    let cluster = cluster_of(native, input).await?;
    let svc = get(native, &cluster, &name).await?;
    let scaled = svc["desiredCount"].as_i64().unwrap_or(0) > 0;
    if scaled && !force && svc["schedulingStrategy"] != "DAEMON" {
        return Err(AwsError::invalid(
            "The service cannot be stopped while it is scaled above 0.",
        ));
    }
    let s = native
        .delete(&path(&cluster, &name))
        .await
        .map_err(ecs_error)?;
    Ok(json!({ "service": described(s) }))
}
