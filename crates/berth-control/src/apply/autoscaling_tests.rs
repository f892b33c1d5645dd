//! Apply with autoscaling sections: references checked against the stack and the store,
//! nothing stored when anything is wrong, and the desired count left to the autoscaler.

use berth_model::autoscaling::{ScalableTarget, ScalingPolicy, ScheduledAction};
use berth_model::ecs::Service;
use berth_model::stack::Stack;

use super::{apply, Change};
use crate::data_plane::fake::FakeDataPlane;
use crate::db::{self, Db};
use crate::error::ControlError;

const SERVICE: &str = r#"
taskDefinitions:
  - family: web
    containerDefinitions:
      - {name: app, image: whoami, entryPoint: [whoami], portMappings: [{containerPort: 8080}]}
targetGroups: [{targetGroupName: web}, {targetGroupName: other}]
loadBalancers:
  - loadBalancerName: web
    listeners:
      - {port: 80, protocol: HTTP, defaultActions: [{type: forward, targetGroupName: web}]}
  - loadBalancerName: tcp
    type: network
    listeners:
      - {port: 81, protocol: TCP, defaultActions: [{type: forward, targetGroupName: other}]}
services:
  - serviceName: web
    taskDefinition: web
    desiredCount: 2
    loadBalancers: [{targetGroupName: web, containerName: app, containerPort: 8080}]
"#;

const SCALING: &str = r#"
scalableTargets:
  - resourceId: service/default/web
    minCapacity: 1
    maxCapacity: 10
scalingPolicies:
  - policyName: requests
    resourceId: service/default/web
    policyType: TargetTrackingScaling
    targetTrackingScalingPolicyConfiguration:
      targetValue: 600
      predefinedMetricSpecification:
        predefinedMetricType: ALBRequestCountPerTarget
        resourceLabel: app/web/targetgroup/web
scheduledActions:
  - scheduledActionName: night
    resourceId: service/default/web
    schedule: cron(0 22 * * ? *)
    scalableTargetAction: {minCapacity: 1, maxCapacity: 2}
"#;

async fn db() -> Db {
    crate::test_fixtures::db_with_default_cluster().await
}

async fn run(db: &Db, yaml: &str) -> Result<Vec<Change>, ControlError> {
    let stack = Stack::from_yaml(yaml).map_err(ControlError::from)?;
    apply(db, &FakeDataPlane::default(), &stack, false).await
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} {} {}", c.kind, c.name, c.action))
        .collect()
}

async fn desired(db: &Db) -> i64 {
    db.get::<Service>(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value
        .desired_count
}

#[tokio::test]
async fn an_autoscaling_only_file_applies_on_a_stored_service_and_is_idempotent() {
    let db = db().await;
    run(&db, SERVICE).await.unwrap();
    let out = run(&db, SCALING).await.unwrap();
    assert_eq!(
        lines(&out),
        [
            "scalable-target service/default/web created",
            "scaling-policy service/default/web:requests created",
            "scheduled-action service/default/web:night created",
        ]
    );
    let t: ScalableTarget = db
        .scalable_target("default", "web")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        t.scalable_target_arn,
        "arn:berth:application-autoscaling:local:000000000000:scalable-target/ecs/service/default/web"
    );
    assert!(t.creation_time.is_some());
    let p: Vec<ScalingPolicy> = db
        .scaling_policies(Some("default"), Some("web"))
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(p.len(), 1);
    assert!(
        p[0].policy_arn.ends_with(":policyName/requests"),
        "{}",
        p[0].policy_arn
    );
    let a: Vec<ScheduledAction> = db
        .scheduled_actions(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_eq!(a[0].scheduled_action_name, "night");

    let rev = db.store.revision().await.unwrap();
    let again = run(&db, SCALING).await.unwrap();
    assert!(again.iter().all(|c| c.action == "unchanged"), "{again:?}");
    assert_eq!(
        db.store.revision().await.unwrap(),
        rev,
        "nothing was written"
    );

    let changed = SCALING.replace("targetValue: 600", "targetValue: 900");
    let out = run(&db, &changed).await.unwrap();
    assert!(
        lines(&out).contains(&"scaling-policy service/default/web:requests updated".to_string()),
        "{out:?}"
    );
}

/// Each bad input is rejected naming the field, and the store is left as it was.
#[tokio::test]
async fn bad_references_are_rejected_naming_the_field_and_store_nothing() {
    let db = db().await;
    run(&db, SERVICE).await.unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            SCALING.replace("service/default/web", "service/default/nope"),
            "scalableTargets[0].resourceId",
            "service \"nope\" does not exist",
        ),
        (
            SCALING.replace("minCapacity: 1\n    maxCapacity: 10", "minCapacity: 5\n    maxCapacity: 3"),
            "scalableTargets[0].minCapacity",
            "must not exceed maxCapacity",
        ),
        (
            SCALING.replace("predefinedMetricType: ALBRequestCountPerTarget", "predefinedMetricType: ALBRequestCount"),
            "scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType",
            "ECSServiceAverageCPUUtilization",
        ),
        (
            SCALING.replace("app/web/targetgroup/web", "app/web/targetgroup/other"),
            "scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.resourceLabel",
            "not one of service/default/web's loadBalancers",
        ),
        (
            SCALING.replace("app/web/targetgroup/web", "app/gone/targetgroup/web"),
            "scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.resourceLabel",
            "load balancer \"gone\" does not exist",
        ),
        (
            SCALING.replace("app/web/targetgroup/web", "app/tcp/targetgroup/web"),
            "scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.resourceLabel",
            "network load balancer",
        ),
        (
            // A policy and an action whose service has no scalable target.
            SCALING.replace(
                "scalableTargets:\n  - resourceId: service/default/web\n    minCapacity: 1\n    maxCapacity: 10\n",
                "",
            ),
            "scalingPolicies[0].resourceId",
            "has no scalable target",
        ),
        (
            SCALING.replace(
                "scalableTargets:\n  - resourceId: service/default/web\n    minCapacity: 1\n    maxCapacity: 10\nscalingPolicies:",
                "scalingPolicies: []\nx:",
            )
            .replace("x:\n  - policyName: requests\n    resourceId: service/default/web\n    policyType: TargetTrackingScaling\n    targetTrackingScalingPolicyConfiguration:\n      targetValue: 600\n      predefinedMetricSpecification:\n        predefinedMetricType: ALBRequestCountPerTarget\n        resourceLabel: app/web/targetgroup/web\n", ""),
            "scheduledActions[0].resourceId",
            "has no scalable target",
        ),
        (
            SCALING.replace("cron(0 22 * * ? *)", "cron(0 22 * * ?)"),
            "scheduledActions[0].schedule",
            "cron needs 6 fields, found 5",
        ),
        (
            SCALING.replace("cron(0 22 * * ? *)", "cron(0 25 * * ? *)"),
            "scheduledActions[0].schedule",
            "cron hours field",
        ),
        (
            SCALING.replace(
                "schedule: cron(0 22 * * ? *)",
                "schedule: cron(0 22 * * ? *)\n    timezone: Mars/Olympus",
            ),
            "scheduledActions[0].timezone",
            "not an IANA time zone name",
        ),
    ];
    let rev = db.store.revision().await.unwrap();
    for (yaml, field, message) in cases {
        let e = run(&db, &yaml).await.unwrap_err();
        match &e {
            ControlError::Invalid {
                field: f,
                message: m,
            } => {
                assert_eq!(f, field, "{e}");
                assert!(m.contains(message), "{e}");
            }
            other => panic!("expected an invalid parameter at {field}, got {other:?}"),
        }
        assert_eq!(
            db.store.revision().await.unwrap(),
            rev,
            "{field}: something was stored"
        );
    }
    assert!(db.scalable_targets(None).await.unwrap().is_empty());
    assert!(db.scaling_policies(None, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_service_and_its_scaling_apply_together_and_the_new_count_is_clamped() {
    let db = db().await;
    let both = format!(
        "{SERVICE}{}",
        SCALING.replace(
            "minCapacity: 1\n    maxCapacity: 10",
            "minCapacity: 3\n    maxCapacity: 10"
        )
    );
    run(&db, &both).await.unwrap();
    assert_eq!(
        desired(&db).await,
        3,
        "desiredCount 2 moved up to minCapacity 3"
    );
    // A policy for a service missing from both the stack and the store is refused even
    // alongside other valid content.
    let e = run(
        &db,
        &both.replace("service/default/web", "service/default/gone"),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().starts_with("scalableTargets[0].resourceId"),
        "{e}"
    );
}

#[tokio::test]
async fn reapplying_a_stack_leaves_the_autoscalers_count_and_clamps_it_when_bounds_change() {
    let db = db().await;
    let both = format!("{SERVICE}{SCALING}");
    run(&db, &both).await.unwrap();
    assert_eq!(desired(&db).await, 2);
    // The autoscaler scales out to 7.
    db.update::<Service, _>(&db::service_key("default", "web"), |s| {
        s.desired_count = 7;
        true
    })
    .await
    .unwrap();
    // Re-applying the same stack (desiredCount: 2) changes nothing.
    let rev = db.store.revision().await.unwrap();
    let out = run(&db, &both).await.unwrap();
    assert!(out.iter().all(|c| c.action == "unchanged"), "{out:?}");
    assert_eq!(db.store.revision().await.unwrap(), rev);
    assert_eq!(desired(&db).await, 7);
    // Another field of the service changes: the count still stays.
    let changed = both.replace("image: whoami,", "image: whoami:2,");
    run(&db, &changed).await.unwrap();
    assert_eq!(desired(&db).await, 7);
    // Lower the maximum to 5 in the stack with the service: clamped to 5.
    let lower = changed.replace("maxCapacity: 10", "maxCapacity: 5");
    let out = run(&db, &lower).await.unwrap();
    assert!(
        lines(&out).contains(&"service web updated".to_string()),
        "{out:?}"
    );
    assert_eq!(desired(&db).await, 5);
    // Raise the minimum to 6 in an autoscaling-only file: clamped to 6 as well.
    let only = SCALING.replace(
        "minCapacity: 1\n    maxCapacity: 10",
        "minCapacity: 6\n    maxCapacity: 8",
    );
    let out = run(&db, &only).await.unwrap();
    assert!(
        lines(&out).contains(&"service web updated".to_string()),
        "{out:?}"
    );
    assert_eq!(desired(&db).await, 6);
}

#[tokio::test]
async fn without_a_scalable_target_the_stack_sets_the_count() {
    let db = db().await;
    run(&db, SERVICE).await.unwrap();
    run(&db, &SERVICE.replace("desiredCount: 2", "desiredCount: 4"))
        .await
        .unwrap();
    assert_eq!(desired(&db).await, 4);
}

#[test]
fn the_desired_count_rule() {
    use super::autoscaling::desired_count;
    let t = ScalableTarget {
        service_namespace: Default::default(),
        resource_id: "service/default/web".into(),
        scalable_dimension: Default::default(),
        min_capacity: 2,
        max_capacity: 6,
        suspended_state: Default::default(),
        scalable_target_arn: String::new(),
        creation_time: None,
    };
    assert_eq!(desired_count(9, Some(4), None), 9);
    assert_eq!(desired_count(9, Some(4), Some(&t)), 4);
    assert_eq!(desired_count(9, Some(8), Some(&t)), 6);
    assert_eq!(desired_count(9, None, Some(&t)), 6);
    assert_eq!(desired_count(0, None, Some(&t)), 2);
}

#[tokio::test]
async fn daemon_and_draining_services_take_no_scalable_target() {
    let db = db().await;
    let daemon = SERVICE
        .replace("    desiredCount: 2\n", "    schedulingStrategy: DAEMON\n")
        .replace(
            "    loadBalancers: [{targetGroupName: web, containerName: app, containerPort: 8080}]\n",
            "",
        );
    run(&db, &daemon).await.unwrap();
    let only_target =
        "scalableTargets: [{resourceId: service/default/web, minCapacity: 1, maxCapacity: 2}]\n";
    let e = run(&db, only_target).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("scalableTargets[0].resourceId: service/default/web is a DAEMON service"),
        "{e}"
    );
    db.update::<Service, _>(&db::service_key("default", "web"), |s| {
        s.status = "DRAINING".into();
        true
    })
    .await
    .unwrap();
    let e = run(&db, only_target).await.unwrap_err();
    assert!(e.to_string().contains("being deleted"), "{e}");
    assert!(db.scalable_targets(None).await.unwrap().is_empty());
}
