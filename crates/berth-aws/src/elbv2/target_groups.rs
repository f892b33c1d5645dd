//! CreateTargetGroup, DescribeTargetGroups, DeleteTargetGroup, ModifyTargetGroup,
//! DescribeTargetGroupAttributes, ModifyTargetGroupAttributes.

use serde_json::{json, Map, Value};

use super::form::Params;
use super::xml::Xml;
use super::{elb_error, get_native, list_native, native_path, page_of};
use crate::native::{enc, Native};
use crate::protocol::AwsError;

/// Query parameters of a target group's settings and the model's member for each.
const SETTINGS: &[(&str, &str)] = &[
    ("Protocol", "protocol"),
    ("ProtocolVersion", "protocolVersion"),
    ("Port", "port"),
    ("TargetType", "targetType"),
    ("HealthCheckEnabled", "healthCheckEnabled"),
    ("HealthCheckProtocol", "healthCheckProtocol"),
    ("HealthCheckPort", "healthCheckPort"),
    ("HealthCheckPath", "healthCheckPath"),
    ("HealthCheckIntervalSeconds", "healthCheckIntervalSeconds"),
    ("HealthCheckTimeoutSeconds", "healthCheckTimeoutSeconds"),
    ("HealthyThresholdCount", "healthyThresholdCount"),
    ("UnhealthyThresholdCount", "unhealthyThresholdCount"),
];

const INTEGERS: &[&str] = &[
    "Port",
    "HealthCheckIntervalSeconds",
    "HealthCheckTimeoutSeconds",
    "HealthyThresholdCount",
    "UnhealthyThresholdCount",
];

/// The attributes ELBv2 describes for every target group, with their defaults.
const DEFAULT_ATTRIBUTES: &[(&str, &str)] = &[
    ("deregistration_delay.timeout_seconds", "300"),
    ("load_balancing.algorithm.type", "round_robin"),
    ("slow_start.duration_seconds", "0"),
    ("stickiness.enabled", "false"),
    ("stickiness.lb_cookie.duration_seconds", "86400"),
    ("stickiness.type", "lb_cookie"),
];

/// Sets the settings `p` gives on the model's JSON `tg`.
fn set_settings(p: &Params, tg: &mut Map<String, Value>) -> Result<(), AwsError> {
    for (param, member) in SETTINGS {
        let Some(v) = p.get(param) else { continue };
        let value = if INTEGERS.contains(param) {
            json!(p.int(param)?)
        } else if *param == "HealthCheckEnabled" {
            json!(p.bool(param)?)
        } else if *param == "TargetType" {
            json!(v.to_ascii_lowercase())
        } else {
            json!(v)
        };
        tg.insert(member.to_string(), value);
    }
    if p.has("Matcher") {
        let m = p.sub("Matcher");
        let mut matcher = Map::new();
        if let Some(c) = m.get("HttpCode") {
            matcher.insert("httpCode".into(), json!(c));
        }
        if let Some(c) = m.get("GrpcCode") {
            matcher.insert("grpcCode".into(), json!(c));
        }
        tg.insert("matcher".into(), Value::Object(matcher));
    }
    Ok(())
}

/// Every target group (with the load balancers forwarding to it).
pub async fn all(native: &Native) -> Result<Vec<Value>, AwsError> {
    list_native(native, "/v1/target-groups").await
}

/// The target group an ARN names, or `TargetGroupNotFound`.
pub async fn get(native: &Native, arn: &str) -> Result<Value, AwsError> {
    get_native(
        native,
        "/v1/target-groups",
        arn,
        "TargetGroupNotFound",
        "target groups",
    )
    .await
}

async fn put(native: &Native, tg: &Value) -> Result<Value, AwsError> {
    let mut body = tg.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("loadBalancerArns");
    }
    let name = tg["targetGroupName"].as_str().unwrap_or("");
    native
        .put(&format!("/v1/target-groups/{}", enc(name)), &body)
        .await
        .map_err(elb_error)
}

/// Writes one target group as ELBv2's `member`.
pub fn write(x: &mut Xml, tg: &Value) {
    x.el(
        "TargetGroupArn",
        tg["targetGroupArn"].as_str().unwrap_or(""),
    );
    x.el(
        "TargetGroupName",
        tg["targetGroupName"].as_str().unwrap_or(""),
    );
    x.opt("Protocol", tg["protocol"].as_str());
    x.opt("ProtocolVersion", tg["protocolVersion"].as_str());
    x.opt("Port", tg["port"].as_u64());
    x.opt(
        "HealthCheckProtocol",
        tg["healthCheckProtocol"]
            .as_str()
            .or(tg["protocol"].as_str()),
    );
    x.opt("HealthCheckPort", tg["healthCheckPort"].as_str());
    x.opt("HealthCheckEnabled", tg["healthCheckEnabled"].as_bool());
    x.opt(
        "HealthCheckIntervalSeconds",
        tg["healthCheckIntervalSeconds"].as_u64(),
    );
    x.opt(
        "HealthCheckTimeoutSeconds",
        tg["healthCheckTimeoutSeconds"].as_u64(),
    );
    x.opt(
        "HealthyThresholdCount",
        tg["healthyThresholdCount"].as_u64(),
    );
    x.opt(
        "UnhealthyThresholdCount",
        tg["unhealthyThresholdCount"].as_u64(),
    );
    x.opt("HealthCheckPath", tg["healthCheckPath"].as_str());
    if let Some(m) = tg.get("matcher").filter(|m| m.is_object()) {
        x.open("Matcher");
        x.opt("HttpCode", m["httpCode"].as_str());
        x.opt("GrpcCode", m["grpcCode"].as_str());
        x.close("Matcher");
    }
    x.members(
        "LoadBalancerArns",
        tg["loadBalancerArns"].as_array().into_iter().flatten(),
        |x, a| {
            x.out_text(a.as_str().unwrap_or(""));
        },
    );
    x.opt(
        "TargetType",
        tg["targetType"].as_str().map(str::to_ascii_lowercase),
    );
    x.el("IpAddressType", "ipv4");
}

fn answer(tgs: &[Value], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.members("TargetGroups", tgs, write);
    x.opt("NextMarker", next);
    x.finish()
}

pub async fn create(native: &Native, p: &Params) -> Result<String, AwsError> {
    let name = p.req("Name")?.to_string();
    if all(native)
        .await?
        .iter()
        .any(|t| t["targetGroupName"] == name.as_str())
    {
        return Err(AwsError::new(
            "DuplicateTargetGroupName",
            format!("A target group with the same name '{name}' exists"),
        ));
    }
    let mut tg = Map::new();
    tg.insert("targetGroupName".into(), json!(name));
    set_settings(p, &mut tg)?;
    let created = put(native, &Value::Object(tg)).await?;
    Ok(answer(&[created], None))
}

pub async fn describe(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arns = p.list("TargetGroupArns");
    let names = p.list("Names");
    let lb = p.get("LoadBalancerArn");
    let all = all(native).await?;
    let mut out = Vec::new();
    if !arns.is_empty() || !names.is_empty() {
        for a in &arns {
            match all.iter().find(|t| t["targetGroupArn"] == a.as_str()) {
                Some(t) => out.push(t.clone()),
                None => {
                    return Err(AwsError::new(
                        "TargetGroupNotFound",
                        format!("One or more target groups not found: {a}"),
                    ))
                }
            }
        }
        for n in &names {
            match all.iter().find(|t| t["targetGroupName"] == n.as_str()) {
                Some(t) => out.push(t.clone()),
                None => {
                    return Err(AwsError::new(
                        "TargetGroupNotFound",
                        format!("One or more target groups not found: {n}"),
                    ))
                }
            }
        }
    } else {
        out = all
            .into_iter()
            .filter(|t| {
                lb.is_none_or(|lb| {
                    t["loadBalancerArns"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == lb))
                })
            })
            .collect();
    }
    let (page, next) = page_of(p, out)?;
    Ok(answer(&page, next))
}

pub async fn delete(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("TargetGroupArn")?;
    get(native, arn).await?;
    native
        .delete(&native_path("/v1/target-groups", arn))
        .await
        .map_err(elb_error)?;
    Ok(String::new())
}

pub async fn modify(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("TargetGroupArn")?;
    let mut tg = get(native, arn).await?;
    for fixed in ["Protocol", "Port", "TargetType", "ProtocolVersion"] {
        if p.has(fixed) {
            return Err(AwsError::new(
                "ValidationError",
                format!("{fixed}: ModifyTargetGroup changes health check settings only"),
            ));
        }
    }
    set_settings(p, tg.as_object_mut().expect("a target group is an object"))?;
    let changed = put(native, &tg).await?;
    Ok(answer(&[changed], None))
}

/// The `<Attributes>` answer of a load balancer or target group: `defaults` (ELBv2's, for
/// keys the resource does not set) overlaid with the stored `attributes`.
pub fn write_attributes(defaults: &[(&str, &str)], stored: &Value) -> String {
    let mut attrs: std::collections::BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in stored["attributes"].as_object().into_iter().flatten() {
        attrs.insert(k.clone(), v.as_str().unwrap_or("").to_string());
    }
    let mut x = Xml::new();
    x.members("Attributes", &attrs, |x, (k, v)| {
        x.el("Key", k);
        x.el("Value", v);
    });
    x.finish()
}

pub async fn describe_attributes(native: &Native, p: &Params) -> Result<String, AwsError> {
    let tg = get(native, p.req("TargetGroupArn")?).await?;
    Ok(write_attributes(DEFAULT_ATTRIBUTES, &tg))
}

pub async fn modify_attributes(native: &Native, p: &Params) -> Result<String, AwsError> {
    let mut tg = get(native, p.req("TargetGroupArn")?).await?;
    set_attributes(p, &mut tg)?;
    let changed = put(native, &tg).await?;
    Ok(write_attributes(DEFAULT_ATTRIBUTES, &changed))
}

/// Sets `Attributes.member.N.{Key,Value}` on the model's `attributes` map of `doc`.
pub fn set_attributes(p: &Params, doc: &mut Value) -> Result<(), AwsError> {
    let given = p.structs("Attributes");
    if given.is_empty() {
        return Err(AwsError::new(
            "ValidationError",
            "Attributes: required, and missing or empty",
        ));
    }
    let m = doc
        .as_object_mut()
        .expect("a resource is an object")
        .entry("attributes")
        .or_insert_with(|| json!({}));
    for (i, a) in given.iter().enumerate() {
        let key = a.get("Key").ok_or_else(|| {
            AwsError::new(
                "ValidationError",
                format!("Attributes.member.{}.Key: required, and missing", i + 1),
            )
        })?;
        m[key] = json!(a.get("Value").unwrap_or(""));
    }
    Ok(())
}
