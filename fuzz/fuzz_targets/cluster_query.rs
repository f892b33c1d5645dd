//! berth-model's ECS cluster query language (`memberOf` placement constraints): any
//! text is parsed within the length limit placement uses, and an expression that parses
//! is evaluated against a container instance. Nothing panics or overflows the stack; a
//! parse error names a byte offset within the text.
#![no_main]

use std::collections::BTreeMap;

use berth_model::ecs::cluster_query::{check_member_of, parse, InstanceView, MAX_EXPRESSION_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expression) = check_member_of("expression", Some(text)) else {
        if text.len() <= MAX_EXPRESSION_LEN {
            if let Err(e) = parse(text) {
                assert!(e.position <= text.len(), "{e} for {} bytes", text.len());
            }
        }
        return;
    };
    let attributes: BTreeMap<String, String> = [
        ("ecs.availability-zone", "eu-west-1a"),
        ("ecs.instance-type", "t3.large"),
        ("stack", "prod"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let view = InstanceView {
        instance_id: "0a1b2c3d",
        ec2_instance_id: "i-0a1b2c3d",
        attributes: &attributes,
        registered_at: 1_700_000_000.0,
        running_tasks_count: 3,
        task_groups: vec!["service:web", "family:web"],
        agent_connected: true,
    };
    let _ = expression.holds_for(&view);
});
