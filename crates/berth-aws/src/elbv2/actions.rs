//! Listener actions and rule conditions: from the query protocol's parameters to
//! berth's model (camelCase JSON), and from the model to ELBv2's XML members.

use serde_json::{json, Map, Value};

use super::form::Params;
use super::xml::Xml;
use crate::protocol::AwsError;

fn validation(message: String) -> AwsError {
    AwsError::new("ValidationError", message)
}

/// The actions of list `prefix` (`DefaultActions`, `Actions`) as the model's JSON.
pub fn actions_from(p: &Params, prefix: &str) -> Result<Vec<Value>, AwsError> {
    let mut out = Vec::new();
    for (i, a) in p.structs(prefix).iter().enumerate() {
        let at = format!("{prefix}.member.{}", i + 1);
        let kind = a
            .req("Type")
            .map_err(|_| validation(format!("{at}.Type: required, and missing")))?;
        let mut v = Map::new();
        v.insert("type".into(), json!(kind));
        if let Some(tg) = a.get("TargetGroupArn") {
            v.insert("targetGroupArn".into(), json!(tg));
        }
        if a.has("ForwardConfig") {
            let f = a.sub("ForwardConfig");
            let mut groups = Vec::new();
            for g in f.structs("TargetGroups") {
                let mut t = json!({ "targetGroupArn": g.get("TargetGroupArn").unwrap_or("") });
                if let Some(w) = g.int("Weight")? {
                    t["weight"] = json!(w);
                }
                groups.push(t);
            }
            let mut fc = json!({ "targetGroups": groups });
            if f.has("TargetGroupStickinessConfig") {
                let s = f.sub("TargetGroupStickinessConfig");
                let mut sc = json!({ "enabled": s.bool("Enabled")?.unwrap_or(false) });
                if let Some(d) = s.int("DurationSeconds")? {
                    sc["durationSeconds"] = json!(d);
                }
                fc["targetGroupStickinessConfig"] = sc;
            }
            v.insert("forwardConfig".into(), fc);
        }
        if a.has("RedirectConfig") {
            let r = a.sub("RedirectConfig");
            let mut rc = Map::new();
            for (k, n) in [
                ("Protocol", "protocol"),
                ("Port", "port"),
                ("Host", "host"),
                ("Path", "path"),
                ("Query", "query"),
                ("StatusCode", "statusCode"),
            ] {
                if let Some(x) = r.get(k) {
                    rc.insert(n.into(), json!(x));
                }
            }
            v.insert("redirectConfig".into(), Value::Object(rc));
        }
        if a.has("FixedResponseConfig") {
            let r = a.sub("FixedResponseConfig");
            let mut rc = Map::new();
            for (k, n) in [
                ("StatusCode", "statusCode"),
                ("ContentType", "contentType"),
                ("MessageBody", "messageBody"),
            ] {
                if let Some(x) = r.get(k) {
                    rc.insert(n.into(), json!(x));
                }
            }
            v.insert("fixedResponseConfig".into(), Value::Object(rc));
        }
        for unsupported in ["AuthenticateOidcConfig", "AuthenticateCognitoConfig"] {
            if a.has(unsupported) {
                return Err(AwsError::new(
                    "InvalidConfigurationRequest",
                    format!("{at}.{unsupported}: berth has no authenticate actions; use forward, redirect or fixed-response"),
                ));
            }
        }
        out.push(Value::Object(v));
    }
    Ok(out)
}

/// Writes the model's actions as ELBv2's `name` list.
pub fn write_actions(x: &mut Xml, name: &str, actions: &[Value]) {
    x.members(name, actions.iter().enumerate(), |x, (i, a)| {
        x.el("Type", a["type"].as_str().unwrap_or(""));
        x.opt("TargetGroupArn", a["targetGroupArn"].as_str());
        x.el("Order", i + 1);
        if let Some(f) = a.get("forwardConfig").filter(|f| f.is_object()) {
            x.open("ForwardConfig");
            x.members(
                "TargetGroups",
                f["targetGroups"].as_array().into_iter().flatten(),
                |x, g| {
                    x.opt("TargetGroupArn", g["targetGroupArn"].as_str());
                    x.opt("Weight", g["weight"].as_u64());
                },
            );
            if let Some(s) = f
                .get("targetGroupStickinessConfig")
                .filter(|s| s.is_object())
            {
                x.open("TargetGroupStickinessConfig");
                x.el("Enabled", s["enabled"].as_bool().unwrap_or(false));
                x.opt("DurationSeconds", s["durationSeconds"].as_u64());
                x.close("TargetGroupStickinessConfig");
            }
            x.close("ForwardConfig");
        }
        if let Some(r) = a.get("redirectConfig").filter(|r| r.is_object()) {
            x.open("RedirectConfig");
            for (k, n) in [
                ("Protocol", "protocol"),
                ("Port", "port"),
                ("Host", "host"),
                ("Path", "path"),
                ("Query", "query"),
                ("StatusCode", "statusCode"),
            ] {
                x.opt(k, r[n].as_str());
            }
            x.close("RedirectConfig");
        }
        if let Some(r) = a.get("fixedResponseConfig").filter(|r| r.is_object()) {
            x.open("FixedResponseConfig");
            x.opt("StatusCode", r["statusCode"].as_str());
            x.opt("ContentType", r["contentType"].as_str());
            x.opt("MessageBody", r["messageBody"].as_str());
            x.close("FixedResponseConfig");
        }
    });
}

/// The `…Config` member ELBv2 writes each condition field's values under.
const VALUE_CONFIGS: &[(&str, &str)] = &[
    ("host-header", "HostHeaderConfig"),
    ("path-pattern", "PathPatternConfig"),
    ("http-request-method", "HttpRequestMethodConfig"),
    ("source-ip", "SourceIpConfig"),
];

/// The rule conditions of `Conditions` as the model's JSON.
pub fn conditions_from(p: &Params) -> Result<Vec<Value>, AwsError> {
    let mut out = Vec::new();
    for (i, c) in p.structs("Conditions").iter().enumerate() {
        let at = format!("Conditions.member.{}", i + 1);
        let field = c
            .req("Field")
            .map_err(|_| validation(format!("{at}.Field: required, and missing")))?;
        let mut values = c.list("Values");
        for (f, config) in VALUE_CONFIGS {
            if *f == field && c.has(config) {
                values.extend(c.sub(config).list("Values"));
            }
        }
        let mut v = json!({ "field": field });
        if !values.is_empty() {
            v["values"] = json!(values);
        }
        if c.has("HttpHeaderConfig") {
            let h = c.sub("HttpHeaderConfig");
            v["httpHeaderConfig"] = json!({
                "httpHeaderName": h.get("HttpHeaderName").unwrap_or(""),
                "values": h.list("Values"),
            });
        }
        if c.has("QueryStringConfig") {
            let kv: Vec<Value> = c
                .sub("QueryStringConfig")
                .structs("Values")
                .iter()
                .map(|q| {
                    let mut e = json!({ "value": q.get("Value").unwrap_or("") });
                    if let Some(k) = q.get("Key") {
                        e["key"] = json!(k);
                    }
                    e
                })
                .collect();
            v["queryStringConfig"] = json!(kv);
        }
        out.push(v);
    }
    Ok(out)
}

/// Writes the model's conditions as ELBv2's `Conditions` list.
pub fn write_conditions(x: &mut Xml, conditions: &[Value]) {
    x.members("Conditions", conditions, |x, c| {
        let field = c["field"].as_str().unwrap_or("");
        x.el("Field", field);
        let values: Vec<&str> = c["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        x.members("Values", &values, |x, v| {
            x.out_text(v);
        });
        if let Some((_, config)) = VALUE_CONFIGS.iter().find(|(f, _)| *f == field) {
            x.open(config);
            x.members("Values", &values, |x, v| {
                x.out_text(v);
            });
            x.close(config);
        }
        if let Some(h) = c.get("httpHeaderConfig").filter(|h| h.is_object()) {
            x.open("HttpHeaderConfig");
            x.opt("HttpHeaderName", h["httpHeaderName"].as_str());
            x.members(
                "Values",
                h["values"].as_array().into_iter().flatten(),
                |x, v| {
                    x.out_text(v.as_str().unwrap_or(""));
                },
            );
            x.close("HttpHeaderConfig");
        }
        if let Some(q) = c.get("queryStringConfig").and_then(Value::as_array) {
            x.open("QueryStringConfig");
            x.members("Values", q, |x, kv| {
                x.opt("Key", kv["key"].as_str());
                x.opt("Value", kv["value"].as_str());
            });
            x.close("QueryStringConfig");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::new(&v)
    }

    #[test]
    fn a_forward_action_and_a_path_condition_read_into_the_model() {
        let p = params(&[
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", "arn:tg"),
            ("Conditions.member.1.Field", "path-pattern"),
            (
                "Conditions.member.1.PathPatternConfig.Values.member.1",
                "/api/*",
            ),
        ]);
        let a = actions_from(&p, "DefaultActions").unwrap();
        assert_eq!(
            a,
            vec![json!({"type": "forward", "targetGroupArn": "arn:tg"})]
        );
        let c = conditions_from(&p).unwrap();
        assert_eq!(
            c,
            vec![json!({"field": "path-pattern", "values": ["/api/*"]})]
        );
        let mut x = Xml::new();
        write_conditions(&mut x, &c);
        let s = x.finish();
        assert!(
            s.contains(
                "<PathPatternConfig><Values><member>/api/*</member></Values></PathPatternConfig>"
            ),
            "{s}"
        );
        let e = actions_from(
            &params(&[("Actions.member.1.TargetGroupArn", "x")]),
            "Actions",
        )
        .unwrap_err();
        assert!(e.message.starts_with("Actions.member.1.Type"), "{e}");
    }
}
