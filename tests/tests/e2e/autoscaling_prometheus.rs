//! End-to-end test of a customized-metric target tracking policy answered by a real
//! Prometheus: the quickstart service at 1 task, Debian's `prometheus` scraping the
//! server's `/metrics` every second on loopback, a policy whose PromQL is the request
//! rate per healthy target of the quickstart's target group; a bounded request load
//! scales the service out to its maximum with no failed request, and the scaling
//! activity names the policy and the query.
//!
//! The test fails (never skips) when the `prometheus` binary is missing; scripts/test
//! installs it. Every wait is a bounded poll; the Prometheus child is killed on drop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use berth_testkit::{quickstart, wait_until, Load, Prometheus, Server};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(40);
const POLICY: &str = "rps-per-target";
/// Requests per second per healthy target of the quickstart's target group, over the
/// last 5 s of 1 s scrapes.
const QUERY: &str = "sum(rate(berth_lb_target_requests_total{target_group=\"whoami\"}[5s])) \
                     / clamp_min(sum(berth_lb_healthy_hosts{target_group=\"whoami\"}), 1)";

/// A scalable target (min 1, max 3) and a target tracking policy on [`QUERY`] asked of
/// the Prometheus at `url`: 5 requests a second per target, short windows and cooldowns.
fn autoscaling_file(dir: &Path, url: &str) -> PathBuf {
    let text = format!(
        "scalableTargets:
  - resourceId: service/default/whoami
    minCapacity: 1
    maxCapacity: 3
scalingPolicies:
  - policyName: {POLICY}
    resourceId: service/default/whoami
    policyType: TargetTrackingScaling
    targetTrackingScalingPolicyConfiguration:
      targetValue: 5
      customizedMetricSpecification:
        prometheus:
          url: {url}
          query: '{QUERY}'
      scaleOutCooldown: 5
      scaleInCooldown: 5
      evaluation: {{scaleOutSeconds: 3, scaleInSeconds: 5}}
"
    );
    let p = dir.join("autoscaling-prometheus.yaml");
    std::fs::write(&p, text).expect("write the autoscaling file");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promql_policy_answered_by_a_real_prometheus_scales_out_without_a_failed_request(
) -> Result<()> {
    berth_testkit::require_prometheus();
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 1))).await?;
    let with_log = |e: anyhow::Error| anyhow!("{e}\n{}", server.log());
    server
        .wait_healthy("whoami", "whoami", 1, SETTLE)
        .await
        .map_err(with_log)?;
    let addr = server.listener_addr("web").await?;

    // Prometheus scrapes the server's /metrics (the API address) every second; the
    // query answers once two scrapes hold the target's counter: 0 requests a second.
    let scrape = server.api.trim_start_matches("http://").to_string();
    let prometheus = Prometheus::start(&scrape, Duration::from_secs(1)).await?;
    let idle = wait_until("Prometheus to answer the policy's query", SETTLE, || {
        prometheus.value(QUERY)
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", prometheus.log()))?;
    assert_eq!(idle, 0.0, "no request was sent yet");

    server.apply_ok(&autoscaling_file(dir.path(), &prometheus.url));

    // A few request loops are far above 5 requests a second per target: out to 3 (in
    // one step, or two when a window still held the idle samples).
    let load = Load::start(&addr, 4);
    let scaled_out = wait_until("a scale-out to 3", SETTLE, || async {
        (server.desired_count("whoami").await? == 3).then_some(())
    })
    .await;
    let healthy = match scaled_out {
        Ok(()) => server.wait_healthy("whoami", "whoami", 3, SETTLE).await,
        Err(e) => Err(e),
    };
    // The three tasks answer through the listener (round robin, under the load).
    let client = reqwest::Client::new();
    let answered = std::sync::Mutex::new(BTreeSet::new());
    let served = match healthy {
        Ok(_) => {
            wait_until("the 3 tasks to answer through the listener", SETTLE, || {
                let (client, answered) = (&client, &answered);
                let url = format!("http://{addr}/");
                async move {
                    let r = match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => r,
                        Ok(r) => return Some(Err(anyhow!("GET {url}: {}", r.status()))),
                        Err(e) => return Some(Err(anyhow!("GET {url}: {e:#}"))),
                    };
                    let task = r.headers().get("x-berth-task")?.to_str().ok()?.to_string();
                    let mut seen = answered.lock().expect("not poisoned");
                    seen.insert(task);
                    (seen.len() == 3).then_some(Ok(()))
                }
            })
            .await
        }
        Err(e) => Err(e),
    };
    let out = load.finish().await;
    served.map_err(|e| anyhow!("{e}\n{}\n{}", prometheus.log(), server.log()))??;
    assert_eq!(
        out.failed, 0,
        "failed requests while scaling out: {:?}",
        out.errors
    );
    assert!(out.ok > 0);

    // Prometheus saw the load the policy acted on, and scrapes the autoscaler's own
    // gauges (the names the Grafana dashboard reads): the desired capacity reaches 3.
    let requests = prometheus
        .value("sum(increase(berth_lb_target_requests_total{target_group=\"whoami\"}[1m]))")
        .await;
    assert!(requests.is_some_and(|r| r > 0.0), "{requests:?}");
    let desired =
        "berth_autoscaling_desired_capacity_tasks{cluster=\"default\",service=\"whoami\"}";
    wait_until(
        "Prometheus to scrape a desired capacity of 3",
        SETTLE,
        || async { (prometheus.value(desired).await? == 3.0).then_some(()) },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", prometheus.log()))?;

    // The scale-out activities name the policy and the query, with a value above 5.
    let all = server.scaling_activities("whoami").await;
    let successful: Vec<&Value> = all
        .iter()
        .filter(|a| a["statusCode"] == "Successful")
        .collect();
    assert!(
        successful
            .first()
            .is_some_and(|a| a["description"] == "Setting desired count to 3."),
        "{all:#?}"
    );
    for a in &successful {
        let cause = a["cause"].as_str().unwrap_or("");
        assert!(
            cause.contains(&format!(
                "triggered policy {POLICY}: the Prometheus query {QUERY}"
            )) && cause.contains("is above the target 5"),
            "{a:#}"
        );
    }
    Ok(())
}
