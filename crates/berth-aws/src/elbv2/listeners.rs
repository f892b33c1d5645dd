//! CreateListener, DescribeListeners, ModifyListener, DeleteListener, CreateRule,
//! DescribeRules, ModifyRule, DeleteRule, SetRulePriorities.
//!
//! Listeners and their rules live in their load balancer's document: each operation
//! finds the document holding the listener (or rule), changes it, and applies it
//! whole. berth derives a listener's ARN from its port and a rule's from its priority,
//! so changing either gives the listener or rule a new ARN, which the answer carries.

use serde_json::{json, Value};

use super::actions::{actions_from, conditions_from, write_actions, write_conditions};
use super::form::Params;
use super::load_balancers::{self, put};
use super::page_of;
use super::xml::Xml;
use crate::native::Native;
use crate::protocol::AwsError;

/// The load balancer holding listener `arn`, and the listener's index in it.
async fn find_listener(native: &Native, arn: &str) -> Result<(Value, usize), AwsError> {
    for lb in load_balancers::all(native).await? {
        let i = lb["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().position(|l| l["listenerArn"] == arn));
        if let Some(i) = i {
            return Ok((lb, i));
        }
    }
    Err(AwsError::new(
        "ListenerNotFound",
        format!("One or more listeners not found: {arn}"),
    ))
}

/// The load balancer holding rule `arn`, its listener's index and the rule's index.
async fn find_rule(native: &Native, arn: &str) -> Result<(Value, usize, usize), AwsError> {
    for lb in load_balancers::all(native).await? {
        for (li, l) in lb["listeners"].as_array().into_iter().flatten().enumerate() {
            let ri = l["rules"]
                .as_array()
                .and_then(|rs| rs.iter().position(|r| r["ruleArn"] == arn));
            if let Some(ri) = ri {
                return Ok((lb.clone(), li, ri));
            }
        }
    }
    Err(AwsError::new(
        "RuleNotFound",
        format!("One or more rules not found: {arn}"),
    ))
}

fn listeners_mut(lb: &mut Value) -> &mut Vec<Value> {
    if !lb["listeners"].is_array() {
        lb["listeners"] = json!([]);
    }
    lb["listeners"].as_array_mut().expect("listeners")
}

fn rules_mut(listener: &mut Value) -> &mut Vec<Value> {
    if !listener["rules"].is_array() {
        listener["rules"] = json!([]);
    }
    listener["rules"].as_array_mut().expect("rules")
}

fn write_listener(x: &mut Xml, lb: &Value, l: &Value) {
    x.el("ListenerArn", l["listenerArn"].as_str().unwrap_or(""));
    x.el(
        "LoadBalancerArn",
        lb["loadBalancerArn"].as_str().unwrap_or(""),
    );
    x.opt("Port", l["port"].as_u64());
    x.opt("Protocol", l["protocol"].as_str());
    x.opt("SslPolicy", l["sslPolicy"].as_str());
    write_actions(
        x,
        "DefaultActions",
        l["defaultActions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]),
    );
}

fn listeners_answer(items: &[(Value, Value)], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.members("Listeners", items, |x, (lb, l)| write_listener(x, lb, l));
    x.opt("NextMarker", next);
    x.finish()
}

fn write_rule(x: &mut Xml, r: &Value) {
    x.el("RuleArn", r["ruleArn"].as_str().unwrap_or(""));
    match r["priority"].as_u64() {
        Some(p) => x.el("Priority", p),
        None => x.el("Priority", "default"),
    };
    write_conditions(
        x,
        r["conditions"].as_array().map(Vec::as_slice).unwrap_or(&[]),
    );
    write_actions(
        x,
        "Actions",
        r["actions"].as_array().map(Vec::as_slice).unwrap_or(&[]),
    );
    x.el("IsDefault", r["priority"].is_null());
}

fn rules_answer(rules: &[Value], next: Option<String>) -> String {
    let mut x = Xml::new();
    x.members("Rules", rules, write_rule);
    x.opt("NextMarker", next);
    x.finish()
}

fn port_of(p: &Params) -> Result<Option<u32>, AwsError> {
    match p.int("Port")? {
        None => Ok(None),
        Some(n) if (0..=65535).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(AwsError::new(
            "ValidationError",
            format!("Port: must be 1 to 65535 (or 0: any free port), got {n}"),
        )),
    }
}

fn refuse_certificates(p: &Params) -> Result<(), AwsError> {
    if p.has("Certificates") {
        return Err(AwsError::new(
            "InvalidConfigurationRequest",
            "Certificates: berth reads a listener's certificate and key from files (certificateFile, privateKeyFile in a stack file), not from certificate ARNs",
        ));
    }
    Ok(())
}

pub async fn create(native: &Native, p: &Params) -> Result<String, AwsError> {
    let lb_arn = p.req("LoadBalancerArn")?;
    refuse_certificates(p)?;
    let mut lb = load_balancers::get(native, lb_arn).await?;
    let port = port_of(p)?
        .ok_or_else(|| AwsError::new("ValidationError", "Port: required, and missing"))?;
    let protocol = p.get("Protocol").unwrap_or("HTTP").to_string();
    let actions = actions_from(p, "DefaultActions")?;
    if actions.is_empty() {
        return Err(AwsError::new(
            "ValidationError",
            "DefaultActions: required, and missing or empty",
        ));
    }
    if listeners_mut(&mut lb).iter().any(|l| l["port"] == port) {
        return Err(AwsError::new(
            "DuplicateListener",
            format!("A listener already exists on port {port} of this load balancer"),
        ));
    }
    let mut listener = json!({ "port": port, "protocol": protocol, "defaultActions": actions });
    if let Some(s) = p.get("SslPolicy") {
        listener["sslPolicy"] = json!(s);
    }
    listeners_mut(&mut lb).push(listener);
    let stored = put(native, &lb).await?;
    let l = stored["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["port"] == port)
        .cloned()
        .unwrap_or(Value::Null);
    Ok(listeners_answer(&[(stored, l)], None))
}

pub async fn describe(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arns = p.list("ListenerArns");
    let lb_arn = p.get("LoadBalancerArn");
    if arns.is_empty() && lb_arn.is_none() {
        return Err(AwsError::new(
            "ValidationError",
            "LoadBalancerArn or ListenerArns: give one of them",
        ));
    }
    let mut out = Vec::new();
    if let Some(a) = lb_arn {
        let lb = load_balancers::get(native, a).await?;
        for l in lb["listeners"].as_array().into_iter().flatten() {
            out.push((lb.clone(), l.clone()));
        }
    }
    for a in &arns {
        let (lb, i) = find_listener(native, a).await?;
        let l = lb["listeners"][i].clone();
        out.push((lb, l));
    }
    let (page, next) = page_of(p, out)?;
    Ok(listeners_answer(&page, next))
}

pub async fn modify(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("ListenerArn")?;
    refuse_certificates(p)?;
    let (mut lb, i) = find_listener(native, arn).await?;
    let mut port = lb["listeners"][i]["port"].as_u64().unwrap_or(0) as u32;
    if let Some(new) = port_of(p)? {
        if new != port && listeners_mut(&mut lb).iter().any(|l| l["port"] == new) {
            return Err(AwsError::new(
                "DuplicateListener",
                format!("A listener already exists on port {new} of this load balancer"),
            ));
        }
        port = new;
    }
    let l = &mut listeners_mut(&mut lb)[i];
    l["port"] = json!(port);
    if let Some(proto) = p.get("Protocol") {
        l["protocol"] = json!(proto);
    }
    if let Some(s) = p.get("SslPolicy") {
        l["sslPolicy"] = json!(s);
    }
    if p.has("DefaultActions") {
        l["defaultActions"] = json!(actions_from(p, "DefaultActions")?);
    }
    if let Some(m) = l.as_object_mut() {
        m.remove("listenerArn");
    }
    let stored = put(native, &lb).await?;
    let l = stored["listeners"][i].clone();
    Ok(listeners_answer(&[(stored, l)], None))
}

pub async fn delete(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("ListenerArn")?;
    let (mut lb, i) = find_listener(native, arn).await?;
    listeners_mut(&mut lb).remove(i);
    put(native, &lb).await?;
    Ok(String::new())
}

fn priority_of(p: &Params, name: &str) -> Result<u32, AwsError> {
    match p.int(name)? {
        Some(n) if (1..=50_000).contains(&n) => Ok(n as u32),
        Some(n) => Err(AwsError::new(
            "ValidationError",
            format!("{name}: must be 1 to 50000, got {n}"),
        )),
        None => Err(AwsError::new(
            "ValidationError",
            format!("{name}: required, and missing"),
        )),
    }
}

pub async fn create_rule(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("ListenerArn")?;
    let priority = priority_of(p, "Priority")?;
    let conditions = conditions_from(p)?;
    let actions = actions_from(p, "Actions")?;
    let (mut lb, i) = find_listener(native, arn).await?;
    let rules = rules_mut(&mut listeners_mut(&mut lb)[i]);
    if rules.iter().any(|r| r["priority"] == priority) {
        return Err(AwsError::new(
            "PriorityInUse",
            format!("Priority '{priority}' is currently in use"),
        ));
    }
    rules.push(json!({ "priority": priority, "conditions": conditions, "actions": actions }));
    let stored = put(native, &lb).await?;
    let rule = stored["listeners"][i]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["priority"] == priority)
        .cloned()
        .unwrap_or(Value::Null);
    Ok(rules_answer(&[rule], None))
}

/// The listener's default rule as ELBv2 lists it: its default actions, no conditions.
fn default_rule(l: &Value) -> Value {
    let arn = l["listenerArn"]
        .as_str()
        .unwrap_or("")
        .replacen(":listener/", ":listener-rule/", 1);
    json!({
        "ruleArn": format!("{arn}/default"),
        "priority": null,
        "conditions": [],
        "actions": l["defaultActions"].clone(),
    })
}

pub async fn describe_rules(native: &Native, p: &Params) -> Result<String, AwsError> {
    let listener = p.get("ListenerArn");
    let arns = p.list("RuleArns");
    let mut out = Vec::new();
    if let Some(a) = listener {
        let (lb, i) = find_listener(native, a).await?;
        let l = &lb["listeners"][i];
        let mut rules: Vec<Value> = l["rules"].as_array().cloned().unwrap_or_default();
        rules.sort_by_key(|r| r["priority"].as_u64());
        out.extend(rules);
        out.push(default_rule(l));
    } else if arns.is_empty() {
        return Err(AwsError::new(
            "ValidationError",
            "ListenerArn or RuleArns: give one of them",
        ));
    }
    for a in &arns {
        let (lb, li, ri) = find_rule(native, a).await?;
        out.push(lb["listeners"][li]["rules"][ri].clone());
    }
    let (page, next) = page_of(p, out)?;
    Ok(rules_answer(&page, next))
}

pub async fn modify_rule(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("RuleArn")?;
    let (mut lb, li, ri) = find_rule(native, arn).await?;
    let rule = &mut rules_mut(&mut listeners_mut(&mut lb)[li])[ri];
    if p.has("Conditions") {
        rule["conditions"] = json!(conditions_from(p)?);
    }
    if p.has("Actions") {
        rule["actions"] = json!(actions_from(p, "Actions")?);
    }
    let stored = put(native, &lb).await?;
    Ok(rules_answer(
        &[stored["listeners"][li]["rules"][ri].clone()],
        None,
    ))
}

pub async fn delete_rule(native: &Native, p: &Params) -> Result<String, AwsError> {
    let arn = p.req("RuleArn")?;
    let (mut lb, li, ri) = find_rule(native, arn).await?;
    rules_mut(&mut listeners_mut(&mut lb)[li]).remove(ri);
    put(native, &lb).await?;
    Ok(String::new())
}

pub async fn set_rule_priorities(native: &Native, p: &Params) -> Result<String, AwsError> {
    let wanted = p.structs("RulePriorities");
    if wanted.is_empty() {
        return Err(AwsError::new(
            "ValidationError",
            "RulePriorities: required, and missing or empty",
        ));
    }
    // All rules must be of one load balancer, which is applied once with every change.
    let mut lb: Option<Value> = None;
    let mut moved = Vec::new();
    for (n, w) in wanted.iter().enumerate() {
        let arn = w.req("RuleArn").map_err(|_| {
            AwsError::new(
                "ValidationError",
                format!(
                    "RulePriorities.member.{}.RuleArn: required, and missing",
                    n + 1
                ),
            )
        })?;
        let priority = priority_of(w, "Priority")?;
        let (found, li, ri) = find_rule(native, arn).await?;
        let doc = lb.get_or_insert(found.clone());
        if doc["loadBalancerArn"] != found["loadBalancerArn"] {
            return Err(AwsError::new(
                "ValidationError",
                "RulePriorities: all rules must belong to one load balancer",
            ));
        }
        doc["listeners"][li]["rules"][ri]["priority"] = json!(priority);
        moved.push((li, priority));
    }
    let mut doc = lb.expect("at least one rule");
    for l in listeners_mut(&mut doc) {
        let rules = rules_mut(l);
        let mut seen = std::collections::BTreeSet::new();
        for r in rules.iter_mut() {
            if !seen.insert(r["priority"].as_u64()) {
                return Err(AwsError::new(
                    "PriorityInUse",
                    format!("Priority '{}' is currently in use", r["priority"]),
                ));
            }
            if let Some(m) = r.as_object_mut() {
                m.remove("ruleArn");
            }
        }
    }
    let stored = put(native, &doc).await?;
    let rules: Vec<Value> = moved
        .iter()
        .filter_map(|(li, prio)| {
            stored["listeners"][*li]["rules"]
                .as_array()?
                .iter()
                .find(|r| r["priority"] == *prio)
                .cloned()
        })
        .collect();
    Ok(rules_answer(&rules, None))
}
