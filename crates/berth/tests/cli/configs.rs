//! Every stack file in `configs/` parses and validates, through `berth validate`.

use std::path::Path;
use std::process::Command;

#[test]
fn every_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["validate", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1, "no stack files found in {}", dir.display());
}

#[test]
fn a_bad_file_exits_64_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(
        &p,
        "services:\n  - serviceName: web\n    taskDefinition: web\n    desiredCount: -3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["validate", "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("services[0].desiredCount"), "{err}");
}

/// The autoscaling examples apply on top of the quickstart: their services, load
/// balancer and target group references resolve against what the quickstart stores.
mod autoscaling_examples {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use async_trait::async_trait;
    use berth_control::data_plane::BoundAddresses;
    use berth_control::{DataPlane, Db};
    use berth_model::dataplane::{CertificateRefusal, ConfigRefusal, ProxyConfig, TargetStatus};
    use berth_model::elb::Listener;
    use berth_model::stack::Stack;
    use tokio::sync::watch;

    /// Apply only asks a data plane to load certificates; the examples have none.
    struct NoDataPlane(watch::Sender<u64>);

    #[async_trait]
    impl DataPlane for NoDataPlane {
        async fn apply(&self, _: ProxyConfig) -> Result<BoundAddresses, ConfigRefusal> {
            Ok(BoundAddresses::new())
        }
        fn target_statuses(&self) -> Vec<TargetStatus> {
            Vec::new()
        }
        fn subscribe(&self) -> watch::Receiver<u64> {
            self.0.subscribe()
        }
        fn check_certificates(&self, _: &Listener) -> Result<(), CertificateRefusal> {
            Ok(())
        }
    }

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
    }

    fn read(path: &Path) -> Stack {
        Stack::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn each_applies_on_the_quickstart() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(configs())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("autoscaling-") && n.ends_with(".yaml"))
            })
            .collect();
        files.sort();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        for expected in [
            "autoscaling-cpu.yaml",
            "autoscaling-prometheus.yaml",
            "autoscaling-requests.yaml",
            "autoscaling-scheduled.yaml",
            "autoscaling-step.yaml",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing: {names:?}"
            );
        }
        let data_plane = NoDataPlane(watch::channel(0).0);
        for file in &files {
            let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
            let quickstart = read(&configs().join("quickstart.yaml"));
            berth_control::apply::apply(&db, &data_plane, &quickstart, false)
                .await
                .unwrap();
            let stack = read(file);
            let changes = berth_control::apply::apply(&db, &data_plane, &stack, false)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let created = changes.iter().filter(|c| c.action == "created").count();
            assert_eq!(
                created,
                stack.scalable_targets.len()
                    + stack.scaling_policies.len()
                    + stack.scheduled_actions.len(),
                "{}: {changes:?}",
                file.display()
            );
            assert_eq!(
                db.scalable_targets(None).await.unwrap().len(),
                1,
                "{}",
                file.display()
            );
        }
    }
}
