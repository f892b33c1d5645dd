//! CreateCluster, DescribeClusters, ListClusters, DeleteCluster.

use serde_json::{json, Value};

use super::{ecs_error, failure, last_segment, listed, page_of, require_cluster};
use crate::json_input::Input;
use crate::native::{enc, Native};
use crate::protocol::AwsError;

/// A cluster as ECS describes it (berth's model has ECS's members; the lists ECS adds
/// are empty).
fn described(mut c: Value) -> Value {
    for list in ["statistics", "tags", "settings", "capacityProviders"] {
        c[list] = json!([]);
    }
    c["defaultCapacityProviderStrategy"] = json!([]);
    c
}

pub async fn create(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let name = input
        .opt_str("clusterName")?
        .unwrap_or_else(|| berth_model::ecs::DEFAULT_CLUSTER.to_string());
    native
        .post("/v1/clusters", &json!({ "clusterName": name }))
        .await
        .map_err(ecs_error)?;
    let c = require_cluster(native, &name).await?;
    Ok(json!({ "cluster": described(c) }))
}

pub async fn describe(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let mut wanted = input.str_list("clusters")?;
    if wanted.is_empty() {
        wanted.push(berth_model::ecs::DEFAULT_CLUSTER.to_string());
    }
    let all = native.get("/v1/clusters").await.map_err(ecs_error)?;
    let all = all.as_array().cloned().unwrap_or_default();
    let mut clusters = Vec::new();
    let mut failures = Vec::new();
    for w in &wanted {
        let name = last_segment(w);
        match all.iter().find(|c| c["clusterName"] == name) {
            Some(c) => clusters.push(described(c.clone())),
            None => failures.push(failure(w, "MISSING")),
        }
    }
    Ok(json!({ "clusters": clusters, "failures": failures }))
}

pub async fn list(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let all = native.get("/v1/clusters").await.map_err(ecs_error)?;
    let arns: Vec<Value> = all
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["clusterArn"].clone())
        .collect();
    let (page, next) = page_of(input, arns)?;
    Ok(listed("clusterArns", page, next))
}

pub async fn delete(native: &Native, input: &Input) -> Result<Value, AwsError> {
    let name = last_segment(&input.req_str("cluster")?).to_string();
    let mut c = require_cluster(native, &name).await?;
    native
        .delete(&format!("/v1/clusters/{}", enc(&name)))
        .await
        .map_err(ecs_error)?;
    c["status"] = json!("INACTIVE");
    Ok(json!({ "cluster": described(c) }))
}
