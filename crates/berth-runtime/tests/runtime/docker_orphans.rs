//! Orphans of the Docker runtime: containers berth labelled for another container
//! instance are found by a runtime of a new instance, ignored while their instance's
//! node is alive, and removed on request; a container without berth's instance label is
//! never one. Fails (does not skip) without a Docker engine.

use std::sync::Arc;
use std::time::Duration;

use crate::support::docker_engine::*;
use crate::support::*;
use berth_runtime::docker::{DockerRuntime, DockerRuntimeConfig};
use berth_runtime::{LiveOwners, OrphanOwner, OrphanTask, Runtime};
use serde_json::json;

async fn node(cluster: &str, instance: &str) -> Arc<DockerRuntime> {
    DockerRuntime::connect(DockerRuntimeConfig {
        resync_interval: Duration::from_secs(2),
        cluster: Some(cluster.to_string()),
        instance: Some(instance.to_string()),
        ..Default::default()
    })
    .await
    .expect("the Docker engine must be reachable for these tests")
}

async fn orphans_of(rt: &DockerRuntime, live: &LiveOwners, arn: &str) -> Vec<OrphanTask> {
    rt.orphans(live)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.task_arn == arn)
        .collect()
}

#[tokio::test]
async fn another_instances_containers_are_orphans_until_removed() {
    berth_testkit::require_docker();
    let cluster = task_id("orphans");
    // Builds the demo image once.
    drop(runtime(&cluster).await);
    let (old_id, new_id) = (
        format!("i-old{}", std::process::id()),
        format!("i-new{}", std::process::id()),
    );
    let mut s = spec(
        &task_id("dkorphan"),
        json!([{"name": "web", "image": IMAGE, "portMappings": [{"containerPort": 8080}], "stopTimeout": 2}]),
    );
    s.cluster = cluster.clone();
    let _cleanup = Cleanup(s.task_arn.clone());
    // A container claiming to be berth's task but without an instance label.
    let unlabelled_arn = format!("{}-unlabelled", s.task_arn);
    let _cleanup_unlabelled = Cleanup(unlabelled_arn.clone());
    let created = docker_cli(&[
        "create",
        "--label",
        "berth.managed=true",
        "--label",
        &format!("berth.task-arn={unlabelled_arn}"),
        IMAGE,
    ]);
    assert!(created.status.success(), "{created:?}");

    let old = node(&cluster, &old_id).await;
    old.start(&s).await.unwrap();
    drop(old);

    let new = node(&cluster, &new_id).await;
    let none = LiveOwners::default();
    let found = orphans_of(&new, &none, &s.task_arn).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].owner, OrphanOwner::Instance(old_id.clone()));
    assert_eq!(found[0].cluster, cluster);
    assert_eq!(found[0].runs, vec![IMAGE.to_string()]);
    assert_eq!(found[0].runtime_ids, containers_of(&s.task_arn));
    assert!(orphans_of(&new, &none, &unlabelled_arn).await.is_empty());

    let mut live = LiveOwners::default();
    live.instance_ids.insert(old_id.clone());
    assert!(orphans_of(&new, &live, &s.task_arn).await.is_empty());

    new.remove_orphan(&found[0]).await.unwrap();
    assert!(containers_of(&s.task_arn).is_empty());
    assert!(orphans_of(&new, &none, &s.task_arn).await.is_empty());
    // The unlabelled container was not touched.
    assert_eq!(containers_of(&unlabelled_arn).len(), 1);
}
