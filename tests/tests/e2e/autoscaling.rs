//! End-to-end tests of the autoscaler through the real `berth` binary: the quickstart
//! service scales out under a load on ALBRequestCountPerTarget and back in once the load
//! drops, without a failed request either way (tasks as local processes, and as Docker
//! containers); a CPU target tracking policy scales out on the demo app's CPU knob
//! (processes).
//!
//! Loads are bounded (a few request loops, or a paced loop) and stay on loopback; every
//! wait is a bounded poll of the API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use berth_testkit::{quickstart, wait_until, Load, Server};

const SETTLE: Duration = Duration::from_secs(40);

/// A scalable target (min 1, max 4) and a target tracking policy, both with short
/// cooldowns and windows.
fn autoscaling_file(dir: &Path, policy: &str) -> PathBuf {
    let text = format!(
        "scalableTargets:
  - resourceId: service/default/whoami
    minCapacity: 1
    maxCapacity: 4
scalingPolicies:
  - policyName: scale
    resourceId: service/default/whoami
    policyType: TargetTrackingScaling
    targetTrackingScalingPolicyConfiguration:
{policy}
      scaleOutCooldown: 5
      scaleInCooldown: 5
      evaluation: {{scaleOutSeconds: 3, scaleInSeconds: 5}}
"
    );
    let p = dir.join("autoscaling.yaml");
    std::fs::write(&p, text).expect("write the autoscaling file");
    p
}

/// Successful scaling activities, oldest first, as their descriptions.
async fn scalings(server: &Server) -> Vec<String> {
    let mut out: Vec<String> = server
        .scaling_activities("whoami")
        .await
        .iter()
        .filter(|a| a["statusCode"] == "Successful")
        .map(|a| a["description"].as_str().unwrap_or("").to_string())
        .collect();
    out.reverse();
    out
}

/// A loop of `per_second` requests a second (one at a time), counting failures.
struct PacedLoad {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<Vec<String>>,
}

impl PacedLoad {
    fn start(addr: &str, per_second: u32) -> PacedLoad {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let url = format!("http://{addr}/");
        let (ok2, failed2) = (ok.clone(), failed.clone());
        let handle = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client");
            let mut errors = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            while !*rx.borrow() {
                tick.tick().await;
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok2.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failed2.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{}", r.status()));
                    }
                    Err(e) => {
                        failed2.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{e:#}"));
                    }
                }
            }
            errors
        });
        PacedLoad {
            ok,
            failed,
            stop,
            handle,
        }
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        let _ = self.stop.send(true);
        let errors = self.handle.await.expect("paced load");
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_count_scales_out_under_load_and_back_in_without_a_failed_request() -> Result<()> {
    scale_out_and_in_on_request_count("process").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_count_scales_containers_out_and_in_without_a_failed_request() -> Result<()> {
    berth_testkit::demo_image();
    scale_out_and_in_on_request_count("docker").await
}

/// The quickstart at 1 task on `runtime`, a request count policy, a heavy load then a
/// light one: out to 4 and back to 1, no request failed.
async fn scale_out_and_in_on_request_count(runtime: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start_with(runtime, Some(&quickstart(dir.path(), 1))).await?;
    let with_log = |e: anyhow::Error| anyhow!("{e}\n{}", server.log());
    server
        .wait_healthy("whoami", "whoami", 1, SETTLE)
        .await
        .map_err(with_log)?;
    let addr = server.listener_addr("web").await?;
    server.apply_ok(&autoscaling_file(
        dir.path(),
        "      targetValue: 600
      predefinedMetricSpecification:
        predefinedMetricType: ALBRequestCountPerTarget
        resourceLabel: app/web/targetgroup/whoami",
    ));

    // Scale out: a few request loops are far above 600 requests per target per minute.
    let load = Load::start(&addr, 4);
    let scaled_out = wait_until("a scale-out to 4", SETTLE, || async {
        (server.desired_count("whoami").await? == 4).then_some(())
    })
    .await;
    let healthy = match scaled_out {
        Ok(()) => server.wait_healthy("whoami", "whoami", 4, SETTLE).await,
        Err(e) => Err(e),
    };
    let out = load.finish().await;
    healthy.map_err(with_log)?;
    assert_eq!(
        out.failed, 0,
        "failed requests while scaling out: {:?}",
        out.errors
    );
    assert!(out.ok > 0);

    // Scale in: 5 requests a second over 4 tasks is 75 per target per minute, below
    // 0.9 x 600; the count halves at most per step, 4 -> 2 -> 1, draining first.
    let light = PacedLoad::start(&addr, 5);
    let scaled_in = wait_until("a scale-in to 1", SETTLE, || async {
        (server.desired_count("whoami").await? == 1).then_some(())
    })
    .await;
    let settled = match scaled_in {
        Ok(()) => server.wait_healthy("whoami", "whoami", 1, SETTLE).await,
        Err(e) => Err(e),
    };
    let (ok, failed, errors) = light.finish().await;
    settled.map_err(with_log)?;
    assert_eq!(failed, 0, "failed requests while scaling in: {errors:?}");
    assert!(ok > 0);

    // Out to 4 (in one step, or two when the first window held a sample from before the
    // load), then in to 1 in steps that each keep at least half the tasks (4 -> 2 -> 1, or
    // 4 -> 3 -> 1 when the scale-in window's highest sample asked for 3).
    let counts: Vec<u32> = scalings(&server)
        .await
        .iter()
        .filter_map(|d| {
            d.strip_prefix("Setting desired count to ")?
                .strip_suffix('.')?
                .parse()
                .ok()
        })
        .collect();
    let n = counts.len();
    let peak = counts.iter().position(|&c| c == 4);
    let scale_in = peak.map(|i| &counts[i..]).unwrap_or_default();
    assert!(
        peak.is_some()
            && scale_in.len() >= 3
            && scale_in.last() == Some(&1)
            && scale_in.windows(2).all(|w| w[1] < w[0] && w[1] >= w[0] / 2),
        "desired counts {counts:?}: {:#?}",
        server.scaling_activities("whoami").await
    );
    let newest = &server.scaling_activities("whoami").await[0];
    assert!(
        newest["cause"]
            .as_str()
            .is_some_and(|c| c.contains("ALBRequestCountPerTarget")),
        "{newest}"
    );
    // The service's events say who changed the count.
    let service = server.get("/v1/clusters/default/services/whoami").await?;
    let events: Vec<&str> = service["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        events.iter().any(|m| m.contains(
            "desired count changed from 1 to 4 by Application Auto Scaling (scaling policy scale)"
        )),
        "{events:#?}"
    );
    // The metrics show the target's capacities and the activities by status.
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    for line in [
        "berth_autoscaling_max_capacity_tasks{cluster=\"default\",service=\"whoami\"} 4",
        "berth_autoscaling_policy_target_value{cluster=\"default\",policy=\"scale\",service=\"whoami\"} 600",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let successful = format!(
        "berth_autoscaling_activities_total{{cluster=\"default\",service=\"whoami\",status_code=\"Successful\"}} {n}"
    );
    assert!(
        metrics.contains(&successful),
        "{successful} missing from\n{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_utilization_from_the_demo_knob_scales_out() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = quickstart(dir.path(), 1);
    let text = std::fs::read_to_string(&stack)?.replace(
        "            value: hello from berth\n",
        "            value: hello from berth\n          - name: WHOAMI_CPU_MS_PER_REQUEST\n            value: \"20\"\n",
    );
    assert!(
        text.contains("WHOAMI_CPU_MS_PER_REQUEST"),
        "the quickstart changed"
    );
    std::fs::write(&stack, text)?;
    let server = Server::start(Some(&stack)).await?;
    let with_log = |e: anyhow::Error| anyhow!("{e}\n{}", server.log());
    server
        .wait_healthy("whoami", "whoami", 1, SETTLE)
        .await
        .map_err(with_log)?;
    let addr = server.listener_addr("web").await?;
    server.apply_ok(&autoscaling_file(
        dir.path(),
        "      targetValue: 50
      predefinedMetricSpecification:
        predefinedMetricType: ECSServiceAverageCPUUtilization",
    ));
    // Two loops of 20 ms of CPU per request keep more than the 128 CPU units (1/8 of a
    // core) the task reserves busy: far above 50 %.
    let load = Load::start(&addr, 2);
    let scaled_out = wait_until("a scale-out on CPU", SETTLE, || async {
        (server.desired_count("whoami").await? > 1).then_some(())
    })
    .await;
    let out = load.finish().await;
    scaled_out.map_err(with_log)?;
    assert_eq!(out.failed, 0, "failed requests: {:?}", out.errors);
    let first = server
        .scaling_activities("whoami")
        .await
        .into_iter()
        .rev()
        .find(|a| a["statusCode"] == "Successful")
        .ok_or_else(|| anyhow!("no successful scaling activity"))?;
    assert!(
        first["cause"]
            .as_str()
            .is_some_and(|c| c.contains("ECSServiceAverageCPUUtilization")),
        "{first}"
    );
    Ok(())
}
