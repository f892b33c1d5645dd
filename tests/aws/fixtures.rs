//! What the AWS front door's CLI tests share: the demo app's task definition as a
//! `--cli-input-json` file, and reading lists of ARNs from answers.

use std::path::Path;

use serde_json::{json, Value};

/// The demo app's task definition as `register-task-definition --cli-input-json` takes
/// it; `greeting` makes each revision differ.
pub fn task_definition_file(dir: &Path, greeting: &str) -> String {
    let td = json!({
        "family": "whoami",
        "networkMode": "bridge",
        "containerDefinitions": [{
            "name": "web",
            "image": "berth-whoami:latest",
            "entryPoint": ["berth-whoami"],
            "cpu": 64,
            "memoryReservation": 32,
            "essential": true,
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
            "environment": [{"name": "GREETING", "value": greeting}],
            "stopTimeout": 5
        }]
    });
    let p = dir.join(format!("td-{greeting}.json"));
    std::fs::write(&p, td.to_string()).expect("write the task definition");
    format!("file://{}", p.display())
}

pub fn arns(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}
