//! CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer,
//! DescribeLoadBalancerAttributes, ModifyLoadBalancerAttributes.

use serde_json::{json, Value};

use super::form::Params;
use super::target_groups::{set_attributes, write_attributes};
use super::xml::{iso8601, Xml};
use super::{elb_error, get_native, list_native, native_path, page_of};
use crate::native::{enc, Native};
use crate::protocol::AwsError;

/// The attributes ELBv2 describes for every application load balancer, with defaults.
const DEFAULT_ATTRIBUTES: &[(&str, &str)] = &[
    ("deletion_protection.enabled", "false"),
    ("idle_timeout.timeout_seconds", "60"),
    ("routing.http2.enabled", "true"),
];

/// Every load balancer (with its listeners' bound ports).
pub async fn all(native: &Native) -> Result<Vec<Value>, AwsError> {
    list_native(native, "/v1/load-balancers").await
}

/// The load balancer an ARN names, or `LoadBalancerNotFound`.
pub async fn get(native: &Native, arn: &str) -> Result<Value, AwsError> {
    get_native(
        native,
        "/v1/load-balancers",
        arn,
        "LoadBalancerNotFound",
        "load balancers",
    )
    .await
}

/// Applies the whole load balancer document again (after a change to its listeners,
/// rules or attributes); returns it as stored.
pub async fn put(native: &Native, lb: &Value) -> Result<Value, AwsError> {
    let mut body = lb.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("state");
        m.remove("stateReason");
        for l in m
            .get_mut("listeners")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(l) = l.as_object_mut() {
                l.remove("boundPort");
            }
        }
    }
    let name = lb["loadBalancerName"].as_str().unwrap_or("");
    native
        .put(&format!("/v1/load-balancers/{}", enc(name)), &body)
        .await
        .map_err(elb_error)
}

fn write(x: &mut Xml, lb: &Value) {
    let name = lb["loadBalancerName"].as_str().unwrap_or("");
    x.el(
        "LoadBalancerArn",
        lb["loadBalancerArn"].as_str().unwrap_or(""),
    );
    // berth's listeners answer on the node's addresses; the name is a placeholder under
    // .localhost, which resolves to the loopback addresses.
    x.el("DNSName", format!("{name}.elb.localhost"));
    x.el("CanonicalHostedZoneId", "BERTH");
    x.opt("CreatedTime", lb["createdTime"].as_f64().map(iso8601));
    x.el("LoadBalancerName", name);
    x.opt("Scheme", lb["scheme"].as_str());
    x.open("State");
    x.el("Code", lb["state"].as_str().unwrap_or("active"));
    x.opt("Reason", lb["stateReason"].as_str());
    x.close("State");
    x.el("Type", lb["type"].as_str().unwrap_or("application"));
    x.members("AvailabilityZones", Vec::<()>::new(), |_, _| {});
    x.members("SecurityGroups", Vec::<()>::new(), |_, _| {});
    x.el("IpAddressType", "ipv4");
}

fn answer(lbs: &[Value], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.members("LoadBalancers", lbs, write);
    x.opt("NextMarker", next);
    x.finish()
}

pub async fn create(native: &Native, p: &Params) -> Result<String, AwsError> {
    let name = p.req("Name")?.to_string();
    if all(native)
        .await?
        .iter()
        .any(|l| l["loadBalancerName"] == name.as_str())
    {
        return Err(AwsError::new(
            "DuplicateLoadBalancerName",
            format!("A load balancer with the same name '{name}' exists"),
        ));
    }
    let mut lb = json!({ "loadBalancerName": name, "listeners": [] });
    if let Some(t) = p.get("Type") {
        lb["type"] = json!(t);
    }
    if let Some(s) = p.get("Scheme") {
        lb["scheme"] = json!(s);
    }
    let created = put(native, &lb).await?;
    Ok(answer(&[created], None))
}

pub async fn describe(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arns = p.list("LoadBalancerArns");
    let names = p.list("Names");
    let all = all(native).await?;
    let mut out = Vec::new();
    if arns.is_empty() && names.is_empty() {
        out = all;
    } else {
        for (field, wanted) in [("loadBalancerArn", &arns), ("loadBalancerName", &names)] {
            for w in wanted {
                match all.iter().find(|l| l[field] == w.as_str()) {
                    Some(l) => out.push(l.clone()),
                    None => {
                        return Err(AwsError::new(
                            "LoadBalancerNotFound",
                            format!("One or more load balancers not found: {w}"),
                        ))
                    }
                }
            }
        }
    }
    let (page, next) = page_of(p, out)?;
    Ok(answer(&page, next))
}

pub async fn delete(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("LoadBalancerArn")?;
    // Deleting a load balancer that is already gone succeeds, as in ELBv2.
    match native.delete(&native_path("/v1/load-balancers", arn)).await {
        Ok(_) => Ok(String::new()),
        Err(e) if e.is_not_found() => Ok(String::new()),
        Err(e) => Err(elb_error(e)),
    }
}

pub async fn describe_attributes(native: &Native, p: &Params) -> Result<String, AwsError> {
    let lb = get(native, p.req("LoadBalancerArn")?).await?;
    Ok(write_attributes(DEFAULT_ATTRIBUTES, &lb))
}

pub async fn modify_attributes(native: &Native, p: &Params) -> Result<String, AwsError> {
    let mut lb = get(native, p.req("LoadBalancerArn")?).await?;
    set_attributes(p, &mut lb)?;
    let changed = put(native, &lb).await?;
    Ok(write_attributes(DEFAULT_ATTRIBUTES, &changed))
}
