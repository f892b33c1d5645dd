//! The autoscaler against an in-memory store and a sampler fed by hand: what it writes
//! for a change, for a decision not to scale, and that a steady state writes nothing.

use std::sync::Arc;

use berth_model::autoscaling::{NotScaledReasonCode, ScalingActivity, ScalingActivityStatusCode};
use berth_model::ecs::{Deployment, DeploymentStatus, RolloutState, Service};
use serde_json::json;

use super::*;
use crate::service_metrics::prometheus::fake::FakePrometheus;
use crate::service_metrics::MetricKey;

const T0: f64 = 1_767_571_200.0;

struct Fixture {
    db: Db,
    metrics: Arc<ServiceMetrics>,
    autoscaler: Autoscaler,
    key: ServiceKey,
}

fn alb() -> MetricKey {
    MetricKey::AlbRequestCountPerTarget {
        target_group_arn: berth_model::arn::target_group("whoami"),
    }
}

async fn fixture(desired: i64, min: i64, max: i64) -> Fixture {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let mut service: Service = serde_json::from_value(json!({
        "serviceName": "web", "taskDefinition": "web", "desiredCount": desired,
        "status": "ACTIVE",
        "loadBalancers": [{"targetGroupArn": berth_model::arn::target_group("whoami"),
            "containerName": "app", "containerPort": 80}]
    }))
    .unwrap();
    service.deployments = vec![Deployment {
        id: "ecs-svc/1".into(),
        status: DeploymentStatus::Primary,
        rollout_state: RolloutState::Completed,
        ..Default::default()
    }];
    db.put(&db::service_key("default", "web"), &service)
        .await
        .unwrap();
    let target: ScalableTarget = serde_json::from_value(json!({
        "resourceId": "service/default/web", "minCapacity": min, "maxCapacity": max
    }))
    .unwrap();
    db.put(&db::scalable_target_key("default", "web"), &target)
        .await
        .unwrap();
    let policy: ScalingPolicy = serde_json::from_value(json!({
        "policyName": "requests",
        "resourceId": "service/default/web",
        "policyType": "TargetTrackingScaling",
        "targetTrackingScalingPolicyConfiguration": {
            "targetValue": 600.0,
            "predefinedMetricSpecification": {
                "predefinedMetricType": "ALBRequestCountPerTarget",
                "resourceLabel": "app/web/targetgroup/whoami"
            },
            "scaleOutCooldown": 30, "scaleInCooldown": 30,
            "evaluation": {"scaleOutSeconds": 5, "scaleInSeconds": 10}
        }
    }))
    .unwrap();
    db.put(
        &db::scaling_policy_key("default", "web", "requests"),
        &policy,
    )
    .await
    .unwrap();
    let metrics = Arc::new(ServiceMetrics::new(
        prometheus::Registry::new(),
        Arc::new(FakePrometheus::default()),
    ));
    Fixture {
        autoscaler: Autoscaler::new(db.clone(), metrics.clone()),
        db,
        metrics,
        key: ServiceKey::new("default", "web"),
    }
}

impl Fixture {
    /// One sample a second of `value` over `(from, to]` seconds after T0.
    fn load(&self, from: u32, to: u32, value: f64) {
        for s in from + 1..=to {
            self.metrics
                .push_sample(&self.key, alb(), T0 + f64::from(s), value);
        }
    }

    async fn service(&self) -> Service {
        self.db
            .get::<Service>(&db::service_key("default", "web"))
            .await
            .unwrap()
            .unwrap()
            .value
    }

    async fn activities(&self) -> Vec<ScalingActivity> {
        self.db.scaling_activities("default", "web").await.unwrap()
    }

    async fn revision(&self) -> u64 {
        self.db.store.revision().await.unwrap()
    }

    async fn pass(&self, second: u32) -> PassReport {
        self.autoscaler
            .reconcile(T0 + f64::from(second))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_load_above_the_target_sets_the_desired_count_with_an_activity_and_an_event() {
    let f = fixture(1, 1, 4).await;
    f.load(0, 10, 1800.0);
    let report = f.pass(10).await;
    let service = f.service().await;
    assert_eq!(service.desired_count, 3, "ceil(1 x 1800 / 600)");
    assert!(
        service.events[0]
            .message
            .starts_with("(service web) desired count changed from 1 to 3 by Application Auto Scaling (scaling policy requests)"),
        "{}",
        service.events[0].message
    );
    let activities = f.activities().await;
    assert_eq!(activities.len(), 1);
    let a = &activities[0];
    assert_eq!(a.status_code, ScalingActivityStatusCode::Successful);
    assert_eq!(a.description, "Setting desired count to 3.");
    assert!(a.cause.contains("triggered policy requests"), "{}", a.cause);
    assert_eq!(
        a.status_message.as_deref(),
        Some("Successfully set desired count to 3. Change successfully fulfilled by ecs.")
    );
    assert_eq!(report.evaluated[0].desired, 3);
    assert_eq!(report.evaluated[0].observations[0].value, Some(1800.0));
    assert_eq!(
        report.evaluated[0].written,
        vec![ScalingActivityStatusCode::Successful]
    );
}

#[tokio::test]
async fn a_target_is_evaluated_at_most_once_a_second() {
    let f = fixture(1, 1, 4).await;
    f.load(0, 10, 300.0);
    assert_eq!(f.pass(10).await.evaluated.len(), 1);
    let report = f.autoscaler.reconcile(T0 + 10.5).await.unwrap();
    assert!(report.evaluated.is_empty());
    assert_eq!(f.pass(11).await.evaluated.len(), 1);
}

#[tokio::test]
async fn a_steady_state_keeps_the_store_quiet() {
    let f = fixture(2, 1, 4).await;
    // Within the target (between 0.9 x 600 and 600): nothing to do, nothing written.
    f.load(0, 60, 570.0);
    let before = f.revision().await;
    for s in 10..=60 {
        f.pass(s).await;
    }
    assert_eq!(
        f.revision().await,
        before,
        "no write while within the target"
    );
    assert!(f.activities().await.is_empty());
}

#[tokio::test]
async fn a_decision_not_to_scale_is_recorded_once_until_its_reason_changes() {
    let f = fixture(4, 1, 4).await;
    f.load(0, 40, 6000.0);
    f.pass(10).await;
    let after_first = f.revision().await;
    let activities = f.activities().await;
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].status_code, ScalingActivityStatusCode::Failed);
    assert_eq!(
        activities[0].not_scaled_reasons[0].code,
        NotScaledReasonCode::AlreadyAtMaxCapacity
    );
    assert_eq!(activities[0].not_scaled_reasons[0].max_capacity, Some(4));
    for s in 11..=40 {
        f.pass(s).await;
    }
    assert_eq!(
        f.revision().await,
        after_first,
        "the same reason is not written again"
    );
    // No data since second 40: a new reason, recorded once.
    for s in 60..=70 {
        f.pass(s).await;
    }
    let activities = f.activities().await;
    assert_eq!(activities.len(), 2);
    assert_eq!(
        activities[0].not_scaled_reasons[0].code,
        NotScaledReasonCode::MissingData
    );
}

#[tokio::test]
async fn scale_in_waits_for_a_deployment_and_scale_out_does_not() {
    let f = fixture(3, 1, 6).await;
    let key = db::service_key("default", "web");
    f.db.update::<Service, _>(&key, |s| {
        s.deployments[0].rollout_state = RolloutState::InProgress;
        true
    })
    .await
    .unwrap();
    f.load(0, 20, 0.0);
    f.pass(20).await;
    assert_eq!(f.service().await.desired_count, 3);
    assert_eq!(
        f.activities().await[0].not_scaled_reasons[0].code,
        NotScaledReasonCode::DeploymentInProgress
    );
    f.load(20, 30, 1200.0);
    f.pass(30).await;
    assert_eq!(f.service().await.desired_count, 6, "ceil(3 x 1200 / 600)");
}

#[tokio::test]
async fn cooldowns_are_read_from_the_stored_activities_so_a_new_autoscaler_keeps_them() {
    let f = fixture(4, 1, 8).await;
    f.load(0, 20, 0.0);
    f.pass(20).await;
    assert_eq!(f.service().await.desired_count, 2, "at most half at once");
    // A new autoscaler (a restarted server) with the same store: the scale-in
    // cooldown of 30 s still holds at second 30 ...
    let restarted = Autoscaler::new(f.db.clone(), f.metrics.clone());
    f.load(20, 30, 0.0);
    restarted.reconcile(T0 + 30.0).await.unwrap();
    assert_eq!(f.service().await.desired_count, 2);
    assert_eq!(
        f.activities().await[0].not_scaled_reasons[0].code,
        NotScaledReasonCode::InCooldown
    );
    // ... and is over at second 51.
    f.load(30, 51, 0.0);
    restarted.reconcile(T0 + 51.0).await.unwrap();
    assert_eq!(f.service().await.desired_count, 1);
}

#[tokio::test]
async fn a_scheduled_action_sets_the_bounds_on_the_target_and_clamps_the_count() {
    let f = fixture(1, 1, 4).await;
    let action: ScheduledAction = serde_json::from_value(json!({
        "scheduledActionName": "morning",
        "resourceId": "service/default/web",
        "schedule": "at(2026-01-05T00:00:30)",
        "scalableTargetAction": {"minCapacity": 3, "maxCapacity": 6}
    }))
    .unwrap();
    f.db.put(
        &db::scheduled_action_key("default", "web", "morning"),
        &action,
    )
    .await
    .unwrap();
    f.load(0, 40, 570.0);
    f.pass(20).await;
    assert_eq!(f.service().await.desired_count, 1);
    f.pass(40).await;
    assert_eq!(f.service().await.desired_count, 3);
    let target =
        f.db.scalable_target("default", "web")
            .await
            .unwrap()
            .unwrap()
            .value;
    assert_eq!((target.min_capacity, target.max_capacity), (3, 6));
    let a = &f.activities().await[0];
    assert!(
        a.cause.starts_with("scheduled action name morning"),
        "{}",
        a.cause
    );
}

#[tokio::test]
async fn a_customized_metric_is_asked_of_the_sampler_and_forgotten_with_its_target() {
    let f = fixture(1, 1, 4).await;
    let policy: ScalingPolicy = serde_json::from_value(json!({
        "policyName": "running",
        "resourceId": "service/default/web",
        "policyType": "TargetTrackingScaling",
        "targetTrackingScalingPolicyConfiguration": {
            "targetValue": 10.0,
            "customizedMetricSpecification": {
                "metricName": "berth_service_running_tasks",
                "labels": {"service": "web"}
            }
        }
    }))
    .unwrap();
    f.db.put(
        &db::scaling_policy_key("default", "web", "running"),
        &policy,
    )
    .await
    .unwrap();
    let custom = MetricKey::Custom(crate::service_metrics::CustomMetric::Registry(
        crate::service_metrics::RegistryMetric {
            name: "berth_service_running_tasks".into(),
            labels: [("service".to_string(), "web".to_string())].into(),
        },
    ));
    let service = f.service().await;
    f.pass(1).await;
    // The sampler now samples it (and finds no such series in its empty registry).
    f.metrics
        .sample_fast(T0 + 1.0, std::slice::from_ref(&service), &[]);
    assert!(f.metrics.last_error(&f.key, &custom).is_some());
    // Without a scalable target the autoscaler stops asking.
    f.db.store
        .delete(&db::scalable_target_key("default", "web"))
        .await
        .unwrap();
    f.pass(3).await;
    f.metrics
        .sample_fast(T0 + 3.0, std::slice::from_ref(&service), &[]);
    assert!(f.metrics.last_error(&f.key, &custom).is_none());
}
