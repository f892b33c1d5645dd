//! Member names between Application Auto Scaling's wire (PascalCase) and berth's model
//! (camelCase; its ARN members are spelled `…ARN` as on the wire).

use serde_json::{Map, Value};

/// Members whose wire name is not the camelCase name with its first letter raised.
const SPECIAL: &[(&str, &str)] = &[("roleArn", "RoleARN")];

/// Every member name of `v`, at any depth, from the wire's to berth's.
pub fn to_model(v: &Value) -> Value {
    rename(v, &|k: &str| {
        SPECIAL
            .iter()
            .find(|(_, wire)| *wire == k)
            .map(|(m, _)| m.to_string())
            .unwrap_or_else(|| lower_first(k))
    })
}

/// Every member name of `v`, at any depth, from berth's to the wire's.
pub fn to_wire(v: &Value) -> Value {
    rename(v, &|k: &str| {
        SPECIAL
            .iter()
            .find(|(m, _)| *m == k)
            .map(|(_, w)| w.to_string())
            .unwrap_or_else(|| upper_first(k))
    })
}

fn rename(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                // Label maps keep their keys as written.
                if k == "labels" || k == "Labels" {
                    out.insert(f(k), x.clone());
                } else {
                    out.insert(f(k), rename(x, f));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|x| rename(x, f)).collect()),
        other => other.clone(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_go_both_ways() {
        let wire = json!({
            "PolicyName": "p",
            "PolicyARN": "arn",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 50.0,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
            }
        });
        let model = to_model(&wire);
        assert_eq!(model["policyARN"], "arn");
        assert_eq!(
            model["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"]
                ["predefinedMetricType"],
            "ECSServiceAverageCPUUtilization"
        );
        assert_eq!(to_wire(&model), wire);
    }
}
