//! Real task definitions, as the ECS developer guide (and AWS's sample repository)
//! print them, through the real binary: each file of `tests/ecs-corpus/task-definitions`
//! is applied unchanged and is either accepted with the warnings listed here or refused
//! naming the member listed here (`tests/ecs-corpus/README.md` says where each comes
//! from and what berth does with it). Then the ones that can run here run on Docker with
//! only their `image` rewritten to a locally built stand-in ([`image`]), and each does
//! what its definition says: links resolve and reach, a volume one container writes is
//! read by another, awslogs streams are named as ECS names them, `dependsOn` orders the
//! start, `initProcessEnabled` puts an init first.
//!
//! The registration test runs tasks as processes and needs no engine; the Docker test
//! fails, never skips, without the engine.

mod image;
mod running;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Result;
use berth_testkit::Server;
use serde_json::{json, Value};

/// What berth does with a corpus file.
enum Outcome {
    /// Registered; `berth apply` warns of these members (paths in the definition).
    Accepted(&'static [&'static str]),
    /// Refused naming this member, with a message containing the fragment.
    Refused(&'static str, &'static str),
}

use Outcome::{Accepted, Refused};

/// Every file of the corpus and its outcome.
const EXPECTED: &[(&str, Outcome)] = &[
    (
        "appmesh-gateway",
        Accepted(&["executionRoleArn", "proxyConfiguration", "runtimePlatform"]),
    ),
    (
        "awslogs-example",
        Accepted(&[
            "containerDefinitions[0].logConfiguration",
            "containerDefinitions[1].logConfiguration",
        ]),
    ),
    ("console-sample-app-volumes", Accepted(&[])),
    ("ecs-exec-task", Accepted(&["executionRoleArn"])),
    ("ecs-secrets-tutorial", Accepted(&[])),
    (
        "example-ecs-gpu",
        Refused(
            "containerDefinitions[0].resourceRequirements",
            "schedules no GPUs",
        ),
    ),
    (
        "example_task_1",
        Accepted(&[
            "executionRoleArn",
            "containerDefinitions[0].logConfiguration",
        ]),
    ),
    ("example_task_2", Accepted(&[])),
    ("example_task_3", Accepted(&[])),
    (
        "fargate-task-definition",
        Accepted(&[
            "executionRoleArn",
            "runtimePlatform",
            "containerDefinitions[0].logConfiguration",
        ]),
    ),
    (
        "firelens-example-cloudwatch",
        Refused(
            "containerDefinitions[0].firelensConfiguration",
            "does not: use logConfiguration",
        ),
    ),
    ("hello_world", Accepted(&[])),
    (
        "kibana",
        Refused(
            "containerDefinitions[0].portMappings[0].hostPort",
            "must equal containerPort (5601) in awsvpc network mode, got 80",
        ),
    ),
    (
        "nginx",
        Accepted(&["containerDefinitions[0].logConfiguration"]),
    ),
    (
        "otel-using-xray",
        Accepted(&[
            "executionRoleArn",
            "containerDefinitions[0].logConfiguration",
            "containerDefinitions[1].logConfiguration",
        ]),
    ),
    ("sample-fargate", Accepted(&[])),
    ("sleep360", Accepted(&[])),
    (
        "task-definition-template",
        Refused("family", "must be 1 to 255 characters long, got 0"),
    ),
    (
        "windows-simple-iis-2019-core",
        Refused(
            "runtimePlatform.operatingSystemFamily",
            "runs Linux containers only",
        ),
    ),
];

fn corpus_dir() -> PathBuf {
    berth_testkit::repo_root().join("tests/ecs-corpus")
}

/// The definition in `<name>.json`, as the file holds it.
fn definition(name: &str) -> Value {
    let path = corpus_dir().join(format!("task-definitions/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes a stack of `task_definitions` (and `services`) into `dir`; returns its path.
fn write_stack(dir: &std::path::Path, name: &str, stack: &Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(stack).unwrap()).unwrap();
    path
}

#[test]
fn every_corpus_file_has_an_expected_outcome_and_a_readme_row() {
    let files: BTreeSet<String> = std::fs::read_dir(corpus_dir().join("task-definitions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = EXPECTED.iter().map(|(n, _)| format!("{n}.json")).collect();
    assert_eq!(files, expected);
    assert!(files.len() >= 10);
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).unwrap();
    for f in &files {
        assert_eq!(
            readme.matches(&format!("| `{f}` |")).count(),
            1,
            "README.md has one row for {f}"
        );
        assert!(
            !definition(f.trim_end_matches(".json"))
                .to_string()
                .contains("_source"),
            "{f} is as published"
        );
    }
}

/// Applies every accepted file unchanged in one stack and each refused one alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_registers_unchanged_with_the_expected_warnings_or_refusals() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(None).await?;

    let accepted: Vec<(&str, &[&str])> = EXPECTED
        .iter()
        .filter_map(|(n, o)| match o {
            Accepted(w) => Some((*n, *w)),
            Refused(..) => None,
        })
        .collect();
    let stack = json!({
        "taskDefinitions": accepted.iter().map(|(n, _)| definition(n)).collect::<Vec<_>>()
    });
    let path = write_stack(dir.path(), "accepted", &stack);
    let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply failed: {stderr}");
    let mut warned: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("warning: task-definition ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ": ");
        let family = parts.next().unwrap().trim_end_matches(":1").to_string();
        warned
            .entry(family)
            .or_default()
            .push(parts.next().unwrap().to_string());
    }
    for (name, warnings) in &accepted {
        let given = definition(name);
        let family = given["family"].as_str().unwrap();
        let got = warned.remove(family).unwrap_or_default();
        assert_eq!(got, *warnings, "warnings of {name}: {stderr}");
        // Registered as given: described back with its containers and images.
        let described = server
            .get(&format!("/v1/task-definitions/{family}:1"))
            .await?;
        assert_eq!(described["family"], family);
        let containers = |v: &Value| -> Vec<(Value, Value)> {
            v["containerDefinitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["name"].clone(), c["image"].clone()))
                .collect()
        };
        assert_eq!(containers(&described), containers(&given), "{name}");
    }
    assert!(warned.is_empty(), "warnings of no corpus file: {warned:?}");

    for (name, outcome) in EXPECTED {
        let Refused(field, fragment) = outcome else {
            continue;
        };
        let given = definition(name);
        let path = write_stack(dir.path(), name, &json!({"taskDefinitions": [given]}));
        for command in ["validate", "apply"] {
            let out = server.cli(&[command, "-f", &path.to_string_lossy()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{command} {name}: {stderr}");
            let at = format!("taskDefinitions[0].{field}: ");
            assert_eq!(stderr.matches(&at).count(), 1, "{command} {name}: {stderr}");
            assert_eq!(
                stderr.matches(*field).count(),
                1,
                "{command} {name}: {stderr}"
            );
            assert!(stderr.contains(fragment), "{command} {name}: {stderr}");
        }
        let family = given["family"].as_str().unwrap();
        assert!(
            server
                .get(&format!("/v1/task-definitions/{family}:1"))
                .await
                .is_err(),
            "{name} was refused, so nothing is registered"
        );
    }

    // Fargate's rules through the binary: the guide's Fargate sample in bridge mode, or
    // with a task size Fargate does not offer, is refused naming the member once.
    for (member, value, fragment) in [
        (
            "networkMode",
            json!("bridge"),
            "must be awsvpc when requiresCompatibilities includes FARGATE",
        ),
        (
            "memory",
            json!("3072"),
            "must be 512, 1024 or 2048 MiB with cpu 256",
        ),
    ] {
        let mut td = definition("sample-fargate");
        td[member] = value;
        let path = write_stack(dir.path(), "fargate", &json!({"taskDefinitions": [td]}));
        let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert_eq!(
            stderr
                .matches(&format!("taskDefinitions[0].{member}: "))
                .count(),
            1,
            "{stderr}"
        );
        assert!(stderr.contains(fragment), "{stderr}");
    }
    Ok(())
}

/// The runnable definitions on Docker, each checked for what it says it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_runs_on_docker_as_written() -> Result<()> {
    running::run_on_docker().await
}
