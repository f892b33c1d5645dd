//! The autoscaling kinds of the CLI: `get scalable-targets|scaling-policies|
//! scheduled-actions` as tables, `describe scaling-activities <service>` as a table,
//! and `describe`/`delete` of one target (`<service>`), policy or action
//! (`<service>/<name>`).

use anyhow::{bail, Result};
use serde_json::Value;

use crate::client::{print_table, s, Client};

/// The kinds (as `client::normalize_kind` names them) these commands handle.
pub const KINDS: &[&str] = &[
    "scalable-targets",
    "scaling-policies",
    "scheduled-actions",
    "scaling-activities",
];

/// The service part of a `resourceId` (`service/<cluster>/<service>`).
fn service_of(v: &Value) -> String {
    let id = s(&v["resourceId"]);
    id.strip_prefix("service/").unwrap_or(&id).to_string()
}

pub async fn get(client: &Client, kind: &str, cluster: Option<&str>, json: bool) -> Result<()> {
    if kind == "scaling-activities" {
        bail!(
            "scaling activities belong to one service: berth describe scaling-activities <service>"
        );
    }
    let q = cluster.map(|c| format!("?cluster={c}")).unwrap_or_default();
    let data = client.get(&format!("/v1/{kind}{q}")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let items = data.as_array().cloned().unwrap_or_default();
    match kind {
        "scalable-targets" => {
            let services = client.get(&format!("/v1/services{q}")).await?;
            let desired = |t: &Value| {
                services
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| {
                        format!("{}/{}", s(&v["cluster"]), s(&v["serviceName"])) == service_of(t)
                    })
                    .map(|v| s(&v["desiredCount"]))
                    .unwrap_or_else(|| "-".into())
            };
            let rows = items
                .iter()
                .map(|t| {
                    vec![
                        service_of(t),
                        s(&t["minCapacity"]),
                        s(&t["maxCapacity"]),
                        desired(t),
                        suspended(&t["suspendedState"]),
                    ]
                })
                .collect::<Vec<_>>();
            print_table(&["SERVICE", "MIN", "MAX", "DESIRED", "SUSPENDED"], &rows);
        }
        "scaling-policies" => {
            let rows = items.iter().map(policy_row).collect::<Vec<_>>();
            print_table(
                &[
                    "NAME",
                    "SERVICE",
                    "TYPE",
                    "METRIC",
                    "TARGET",
                    "COOLDOWN OUT/IN",
                ],
                &rows,
            );
        }
        "scheduled-actions" => {
            let rows = items
                .iter()
                .map(|a| {
                    let act = &a["scalableTargetAction"];
                    vec![
                        s(&a["scheduledActionName"]),
                        service_of(a),
                        s(&a["schedule"]),
                        a["timezone"].as_str().unwrap_or("UTC").to_string(),
                        s(&act["minCapacity"]),
                        s(&act["maxCapacity"]),
                    ]
                })
                .collect::<Vec<_>>();
            print_table(
                &["NAME", "SERVICE", "SCHEDULE", "TIMEZONE", "MIN", "MAX"],
                &rows,
            );
        }
        other => bail!("not an autoscaling kind: {other}"),
    }
    Ok(())
}

/// `in,out,scheduled` for the suspended directions, `-` for none.
fn suspended(st: &Value) -> String {
    let flags: Vec<&str> = [
        ("dynamicScalingInSuspended", "in"),
        ("dynamicScalingOutSuspended", "out"),
        ("scheduledScalingSuspended", "scheduled"),
    ]
    .iter()
    .filter(|(k, _)| st[*k].as_bool() == Some(true))
    .map(|(_, v)| *v)
    .collect();
    if flags.is_empty() {
        "-".into()
    } else {
        flags.join(",")
    }
}

/// What a metric specification reads, in a few words.
fn metric(predefined: &Value, customized: &Value) -> String {
    if let Some(t) = predefined["predefinedMetricType"].as_str() {
        return match predefined["resourceLabel"].as_str() {
            Some(l) => format!("{t} ({l})"),
            None => t.to_string(),
        };
    }
    if let Some(q) = customized["prometheus"]["query"].as_str() {
        return format!("prometheus: {q}");
    }
    if let Some(n) = customized["metricName"].as_str() {
        let labels: Vec<String> = customized["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect();
        return format!("{n}{{{}}}", labels.join(","));
    }
    "-".into()
}

fn policy_row(p: &Value) -> Vec<String> {
    let tt = &p["targetTrackingScalingPolicyConfiguration"];
    let st = &p["stepScalingPolicyConfiguration"];
    let (kind, metric, target, cooldowns) = if tt.is_object() {
        let scale_in = if tt["disableScaleIn"].as_bool() == Some(true) {
            "no scale-in".to_string()
        } else {
            s(&tt["scaleInCooldown"])
        };
        (
            "TargetTracking",
            metric(
                &tt["predefinedMetricSpecification"],
                &tt["customizedMetricSpecification"],
            ),
            s(&tt["targetValue"]),
            format!("{}/{scale_in}", s(&tt["scaleOutCooldown"])),
        )
    } else {
        let alarm = &st["alarm"];
        let op = match alarm["comparisonOperator"].as_str().unwrap_or("") {
            "GreaterThanOrEqualToThreshold" => ">=",
            "GreaterThanThreshold" => ">",
            "LessThanThreshold" => "<",
            "LessThanOrEqualToThreshold" => "<=",
            _ => "?",
        };
        (
            "Step",
            metric(
                &alarm["metric"]["predefinedMetricSpecification"],
                &alarm["metric"]["customizedMetricSpecification"],
            ),
            format!("{op} {}", s(&alarm["threshold"])),
            s(&st["cooldown"]),
        )
    };
    vec![
        s(&p["policyName"]),
        service_of(p),
        kind.to_string(),
        metric,
        target,
        cooldowns,
    ]
}

/// `berth describe <kind> <name>`: a service's activities as a table, or one target,
/// policy or action in full.
pub async fn describe(
    client: &Client,
    kind: &str,
    name: &str,
    cluster: &str,
    json: bool,
) -> Result<()> {
    if kind == "scaling-activities" {
        return describe_activities(client, name, cluster, json).await;
    }
    let v = client.get(&object_path(kind, name, cluster)?).await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `berth delete <kind> <name>`: one target (with its policies and actions), policy or
/// action.
pub async fn delete(client: &Client, kind: &str, name: &str, cluster: &str) -> Result<()> {
    client.delete(&object_path(kind, name, cluster)?).await?;
    println!(
        "{} {name} deleted",
        kind.trim_end_matches('s').replace("policie", "policy")
    );
    Ok(())
}

/// The API path of one scalable target (`<service>`), policy or action
/// (`<service>/<name>`).
pub fn object_path(kind: &str, name: &str, cluster: &str) -> Result<String> {
    let base = |svc: &str| format!("/v1/clusters/{cluster}/services/{svc}");
    Ok(match kind {
        "scalable-targets" => format!("{}/scalable-target", base(last_of(name))),
        "scaling-policies" | "scheduled-actions" => {
            let Some((svc, n)) = name.split_once('/') else {
                bail!(
                    "name a {} as <service>/<name>, got {name:?}",
                    kind.trim_end_matches('s')
                );
            };
            format!("{}/{kind}/{n}", base(svc))
        }
        other => bail!("not an autoscaling kind: {other}"),
    })
}

/// A service given as its name or as `service/<cluster>/<service>`.
fn last_of(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// `berth describe scaling-activities <service>`: newest first.
async fn describe_activities(
    client: &Client,
    service: &str,
    cluster: &str,
    json: bool,
) -> Result<()> {
    let data = client
        .get(&format!(
            "/v1/clusters/{cluster}/services/{}/scaling-activities",
            last_of(service)
        ))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let rows = data
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let reasons: Vec<String> = a["notScaledReasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| s(&r["code"]))
                .collect();
            let why = if reasons.is_empty() {
                s(&a["cause"])
            } else {
                format!("not scaled: {} ({})", reasons.join(", "), s(&a["cause"]))
            };
            vec![
                a["startTime"]
                    .as_f64()
                    .map(utc)
                    .unwrap_or_else(|| "-".into()),
                s(&a["statusCode"]),
                s(&a["description"]),
                why,
            ]
        })
        .collect::<Vec<_>>();
    print_table(&["START (UTC)", "STATUS", "DESCRIPTION", "CAUSE"], &rows);
    Ok(())
}

/// Seconds since the epoch as `yyyy-mm-dd hh:mm:ss` in UTC.
pub fn utc(t: f64) -> String {
    let secs = t.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_868_800.0), "2000-03-01 00:00:00");
        assert_eq!(utc(1_796_108_400.9), "2026-12-01 07:00:00");
    }

    #[test]
    fn policy_rows_say_what_each_policy_reads() {
        let tt = json!({
            "policyName": "req", "resourceId": "service/default/web",
            "targetTrackingScalingPolicyConfiguration": {
                "targetValue": 600.0, "scaleOutCooldown": 60, "scaleInCooldown": 300,
                "predefinedMetricSpecification": {"predefinedMetricType": "ALBRequestCountPerTarget", "resourceLabel": "app/web/targetgroup/web"}
            }
        });
        assert_eq!(
            policy_row(&tt),
            [
                "req",
                "default/web",
                "TargetTracking",
                "ALBRequestCountPerTarget (app/web/targetgroup/web)",
                "600.0",
                "60/300"
            ]
        );
        let step = json!({
            "policyName": "burst", "resourceId": "service/default/web",
            "stepScalingPolicyConfiguration": {
                "cooldown": 120,
                "alarm": {"comparisonOperator": "GreaterThanOrEqualToThreshold", "threshold": 80.0,
                          "metric": {"customizedMetricSpecification": {"metricName": "berth_service_cpu_utilization_ratio", "labels": {"service": "web"}}}}
            }
        });
        assert_eq!(
            policy_row(&step),
            [
                "burst",
                "default/web",
                "Step",
                "berth_service_cpu_utilization_ratio{service=web}",
                ">= 80.0",
                "120"
            ]
        );
    }

    #[test]
    fn object_paths() {
        assert_eq!(
            object_path("scalable-targets", "web", "default").unwrap(),
            "/v1/clusters/default/services/web/scalable-target"
        );
        assert_eq!(
            object_path("scaling-policies", "web/cpu", "c").unwrap(),
            "/v1/clusters/c/services/web/scaling-policies/cpu"
        );
        assert!(object_path("scheduled-actions", "night", "c").is_err());
    }
}
