//! End-to-end test of a full disk: a server whose data directory is a small tmpfs
//! (mounted by the test, which needs root, and unmounted however it ends). With the
//! filesystem full, an apply is answered 500 naming the cause and changes nothing; once
//! space is freed the next apply succeeds and the service converges to it.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use berth_testkit::small_fs::SmallFs;
use berth_testkit::{quickstart, Server};

const SETTLE: Duration = Duration::from_secs(90);

async fn apply_json(
    server: &Server,
    stack: &serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/apply", server.api))
        .json(stack)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

async fn apply(server: &Server, stack: &Path) -> Result<(u16, serde_json::Value)> {
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(stack)?)?;
    apply_json(server, &yaml).await
}

/// A task definition of its own family whose content differs with `n`: each one applied
/// is a new revision of about 32 KiB.
fn ballast(n: usize) -> serde_json::Value {
    serde_json::json!({"taskDefinitions": [{
        "family": "ballast",
        "containerDefinitions": [{
            "name": "b",
            "image": "b",
            "memory": 32,
            "environment": [{"name": "BALLAST", "value": format!("{n}-{}", "x".repeat(32 * 1024))}],
        }],
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_directory_fails_writes_clearly_and_berth_recovers() -> Result<()> {
    let fs = SmallFs::mount("64m");
    let work = tempfile::tempdir()?;
    let two = quickstart(work.path(), 2);
    let three = quickstart(work.path(), 3);
    let mut server = Server::launch_with(fs.path(), Some(&two), "process", &[]).await?;
    server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;

    let filler = fs.fill();
    // The store file has room of its own; new revisions use it up, then one fails.
    let mut failed = None;
    for n in 0..1000 {
        let (status, body) = apply_json(&server, &ballast(n)).await?;
        if status != 200 {
            failed = Some((n, status, body));
            break;
        }
    }
    let (n, status, body) = failed.expect("an apply fails once the filesystem is full");
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no space left on the filesystem of") && message.contains("berth.redb"),
        "{body}"
    );
    // Nothing of the failed apply was stored, and what was stored reads as before.
    let revisions = server
        .get("/v1/task-definitions?familyPrefix=ballast")
        .await;
    println!("{n} ballast revisions stored; {revisions:?}");
    assert!(server
        .get(&format!("/v1/task-definitions/ballast:{}", n + 1))
        .await
        .is_err());
    if n > 0 {
        server
            .get(&format!("/v1/task-definitions/ballast:{n}"))
            .await?;
    }
    assert_eq!(server.desired_count("whoami").await, Some(2));
    assert_eq!(server.service_tasks("whoami").await?.len(), 2);

    std::fs::remove_file(&filler)?;
    let (status, body) = apply(&server, &three).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.desired_count("whoami").await, Some(3));
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    server.kill_everything();
    Ok(())
}
