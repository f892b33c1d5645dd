//! The autoscaling resources read from stack files: defaults, JSON names, and every
//! rule's error naming its field.

use super::policy::*;
use super::*;
use crate::stack::Stack;
use crate::ValidationError;

fn stack(yaml: &str) -> Stack {
    Stack::from_yaml(yaml).unwrap()
}

fn err(yaml: &str) -> ValidationError {
    match Stack::from_yaml(yaml) {
        Err(e) => e,
        Ok(s) => s.validate().unwrap_err(),
    }
}

const TARGET: &str = r#"
scalableTargets:
  - resourceId: service/default/web
    minCapacity: 1
    maxCapacity: 10
"#;

fn tt_policy(config: &str) -> String {
    format!(
        "{TARGET}scalingPolicies:\n  - policyName: p\n    resourceId: service/default/web\n    policyType: TargetTrackingScaling\n    targetTrackingScalingPolicyConfiguration:\n{config}"
    )
}

fn step_policy(config: &str) -> String {
    format!(
        "{TARGET}scalingPolicies:\n  - policyName: s\n    resourceId: service/default/web\n    policyType: StepScaling\n    stepScalingPolicyConfiguration:\n      adjustmentType: ChangeInCapacity\n      alarm:\n        metric: {{predefinedMetricSpecification: {{predefinedMetricType: ECSServiceAverageCPUUtilization}}}}\n        comparisonOperator: GreaterThanOrEqualToThreshold\n        threshold: 80\n{config}"
    )
}

#[test]
fn an_autoscaling_only_file_is_a_stack_with_aws_defaults() {
    let s = stack(&tt_policy(
        "      targetValue: 70\n      predefinedMetricSpecification: {predefinedMetricType: ECSServiceAverageCPUUtilization}\n",
    ));
    s.validate().unwrap();
    let t = &s.scalable_targets[0];
    assert_eq!(t.service_namespace, ServiceNamespace::Ecs);
    assert_eq!(
        t.scalable_dimension,
        ScalableDimension::EcsServiceDesiredCount
    );
    assert_eq!(t.suspended_state, SuspendedState::default());
    let c = s.scaling_policies[0]
        .target_tracking_scaling_policy_configuration
        .as_ref()
        .unwrap();
    assert_eq!((c.scale_out_cooldown, c.scale_in_cooldown), (300, 300));
    assert!(!c.disable_scale_in);
    assert_eq!(
        c.evaluation,
        EvaluationWindow {
            scale_out_seconds: 5,
            scale_in_seconds: 60
        }
    );
    // Round trip through JSON keeps AWS's member names.
    let json = serde_json::to_value(&s).unwrap();
    let p = &json["scalingPolicies"][0];
    assert_eq!(p["serviceNamespace"], "ecs");
    assert_eq!(p["scalableDimension"], "ecs:service:DesiredCount");
    assert_eq!(
        p["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"]
            ["predefinedMetricType"],
        "ECSServiceAverageCPUUtilization"
    );
    let back: Stack = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn arns_have_berths_shape() {
    let svc = ServiceRef::parse("resourceId", "service/default/web").unwrap();
    assert_eq!(
        scalable_target_arn(&svc),
        "arn:berth:application-autoscaling:local:000000000000:scalable-target/ecs/service/default/web"
    );
    assert_eq!(
        scaling_policy_arn(&svc, "cpu"),
        "arn:berth:autoscaling:local:000000000000:scalingPolicy:resource/ecs/service/default/web:policyName/cpu"
    );
    assert_eq!(
        crate::arn::resource(&scheduled_action_arn(&svc, "night")),
        Some("scheduledAction:resource/ecs/service/default/web:scheduledActionName/night")
    );
}

#[test]
fn min_above_max_and_bad_resource_ids_name_the_field() {
    let e = err(&TARGET.replace("minCapacity: 1", "minCapacity: 11"));
    assert_eq!(e.field, "scalableTargets[0].minCapacity");
    assert!(e.message.contains("maxCapacity (10)"), "{e}");
    let e = err(&TARGET.replace("maxCapacity: 10", "maxCapacity: 10001"));
    assert_eq!(e.field, "scalableTargets[0].maxCapacity");
    for bad in [
        "web",
        "service/web",
        "services/default/web",
        "service/default/we b",
    ] {
        let e = err(&TARGET.replace("service/default/web", bad));
        assert_eq!(e.field, "scalableTargets[0].resourceId", "{bad}");
        assert!(e.message.contains("service/<cluster>/<service>"), "{e}");
    }
    let e = err(&TARGET.replace(
        "minCapacity: 1",
        "minCapacity: 1\n    serviceNamespace: rds",
    ));
    assert_eq!(e.field, "scalableTargets[0].serviceNamespace");
    assert!(e.message.contains("ecs"), "{e}");
    let e = err(&format!(
        "{TARGET}{}",
        TARGET.replace("scalableTargets:\n", "")
    ));
    assert_eq!(e.field, "scalableTargets[1].resourceId");
}

#[test]
fn unknown_predefined_metric_names_the_field_and_the_choices() {
    let e = err(&tt_policy(
        "      targetValue: 70\n      predefinedMetricSpecification: {predefinedMetricType: ECSServiceAverageDiskUtilization}\n",
    ));
    assert_eq!(
        e.field,
        "scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType"
    );
    assert!(e.message.contains("ALBRequestCountPerTarget"), "{e}");
}

#[test]
fn target_tracking_rules() {
    let cpu = "      predefinedMetricSpecification: {predefinedMetricType: ECSServiceAverageCPUUtilization}\n";
    let at = "scalingPolicies[0].targetTrackingScalingPolicyConfiguration";
    let cases = [
        (format!("      targetValue: 0\n{cpu}"), "targetValue"),
        (format!("      targetValue: 70\n{cpu}      scaleInCooldown: -1\n"), "scaleInCooldown"),
        (
            format!("      targetValue: 70\n{cpu}      evaluation: {{scaleOutSeconds: 0}}\n"),
            "evaluation.scaleOutSeconds",
        ),
        ("      targetValue: 70\n".to_string(), "predefinedMetricSpecification"),
        (
            "      targetValue: 70\n      predefinedMetricSpecification: {predefinedMetricType: ALBRequestCountPerTarget}\n".to_string(),
            "predefinedMetricSpecification.resourceLabel",
        ),
        (
            "      targetValue: 70\n      predefinedMetricSpecification: {predefinedMetricType: ECSServiceAverageCPUUtilization, resourceLabel: app/web/targetgroup/web}\n".to_string(),
            "predefinedMetricSpecification.resourceLabel",
        ),
        (
            "      targetValue: 70\n      predefinedMetricSpecification: {predefinedMetricType: ALBRequestCountPerTarget, resourceLabel: net/web/targetgroup/web}\n".to_string(),
            "predefinedMetricSpecification.resourceLabel",
        ),
        (
            "      targetValue: 70\n      customizedMetricSpecification: {prometheus: {url: localhost:9090, query: up}}\n".to_string(),
            "customizedMetricSpecification.prometheus.url",
        ),
        (
            "      targetValue: 70\n      customizedMetricSpecification: {metricName: berth_nope}\n".to_string(),
            "customizedMetricSpecification.metricName",
        ),
        (
            "      targetValue: 70\n      customizedMetricSpecification: {metricName: berth_service_cpu_utilization_ratio, labels: {target_group: x}}\n".to_string(),
            "customizedMetricSpecification.labels.target_group",
        ),
        (
            "      targetValue: 70\n      customizedMetricSpecification: {prometheus: {url: 'http://p:9090', query: up}, labels: {a: b}}\n".to_string(),
            "customizedMetricSpecification.labels",
        ),
    ];
    for (config, field) in cases {
        let e = err(&tt_policy(&config));
        assert_eq!(e.field, format!("{at}.{field}"), "{config}: {e}");
    }
    // Both customized forms are accepted.
    stack(&tt_policy(
        "      targetValue: 5\n      customizedMetricSpecification: {prometheus: {url: 'http://127.0.0.1:9090', query: 'sum(rate(x[30s]))'}}\n",
    ))
    .validate()
    .unwrap();
    stack(&tt_policy(
        "      targetValue: 0.5\n      customizedMetricSpecification: {metricName: berth_service_cpu_utilization_ratio, labels: {cluster: default, service: web}, statistic: Maximum}\n",
    ))
    .validate()
    .unwrap();
    // A step configuration on a target tracking policy is refused.
    let e = err(&format!(
        "{}    stepScalingPolicyConfiguration: {{adjustmentType: ExactCapacity, stepAdjustments: [], alarm: {{metric: {{}}, comparisonOperator: LessThanThreshold, threshold: 1}}}}\n",
        tt_policy(&format!("      targetValue: 70\n{cpu}"))
    ));
    assert_eq!(e.field, "scalingPolicies[0].stepScalingPolicyConfiguration");
}

fn steps(list: &str) -> String {
    format!("      stepAdjustments: {list}\n")
}

#[test]
fn step_bounds_follow_application_auto_scalings_rules() {
    let at = "scalingPolicies[0].stepScalingPolicyConfiguration";
    let good = [
        "[{metricIntervalLowerBound: 0, scalingAdjustment: 1}]",
        "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}, {metricIntervalLowerBound: 10, scalingAdjustment: 3}]",
        // Out of order is fine as long as the ranges meet.
        "[{metricIntervalLowerBound: 10, scalingAdjustment: 3}, {metricIntervalUpperBound: 0, scalingAdjustment: -1}, {metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}]",
    ];
    for g in good {
        stack(&step_policy(&steps(g)))
            .validate()
            .unwrap_or_else(|e| panic!("{g}: {e}"));
    }
    let bad = [
        ("[]", "stepAdjustments"),
        ("[{scalingAdjustment: 1}]", "stepAdjustments[0]"),
        (
            "[{metricIntervalLowerBound: 5, metricIntervalUpperBound: 5, scalingAdjustment: 1}]",
            "stepAdjustments[0].metricIntervalUpperBound",
        ),
        (
            "[{metricIntervalUpperBound: 0, scalingAdjustment: -1}, {metricIntervalUpperBound: 10, scalingAdjustment: 1}]",
            "stepAdjustments[1].metricIntervalLowerBound",
        ),
        (
            "[{metricIntervalLowerBound: 0, scalingAdjustment: 1}, {metricIntervalLowerBound: 10, scalingAdjustment: 2}]",
            "stepAdjustments[1].metricIntervalUpperBound",
        ),
        // Overlap.
        (
            "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}, {metricIntervalLowerBound: 5, scalingAdjustment: 2}]",
            "stepAdjustments[1].metricIntervalLowerBound",
        ),
        // Gap.
        (
            "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}, {metricIntervalLowerBound: 20, scalingAdjustment: 2}]",
            "stepAdjustments[1].metricIntervalLowerBound",
        ),
        // A negative lower bound needs a step with no lower bound.
        (
            "[{metricIntervalLowerBound: -10, scalingAdjustment: 1}]",
            "stepAdjustments[0].metricIntervalLowerBound",
        ),
        // A positive upper bound needs a step with no upper bound.
        (
            "[{metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}]",
            "stepAdjustments[0].metricIntervalUpperBound",
        ),
    ];
    for (b, field) in bad {
        let e = err(&step_policy(&steps(b)));
        assert_eq!(e.field, format!("{at}.{field}"), "{b}: {e}");
    }
}

#[test]
fn adjustment_types_and_alarm_fields() {
    let at = "scalingPolicies[0].stepScalingPolicyConfiguration";
    let one = steps("[{metricIntervalLowerBound: 0, scalingAdjustment: 50}]");
    let e = err(&step_policy(&format!(
        "{one}      minAdjustmentMagnitude: 2\n"
    )));
    assert_eq!(e.field, format!("{at}.minAdjustmentMagnitude"));
    let pct = step_policy(&format!("{one}      minAdjustmentMagnitude: 2\n"))
        .replace("ChangeInCapacity", "PercentChangeInCapacity");
    let s = stack(&pct);
    s.validate().unwrap();
    let c = s.scaling_policies[0]
        .step_scaling_policy_configuration
        .as_ref()
        .unwrap();
    assert_eq!(
        (c.cooldown, c.metric_aggregation_type),
        (300, MetricAggregationType::Average)
    );
    assert_eq!(c.alarm.evaluation_seconds, 10);
    let exact = step_policy(&steps(
        "[{metricIntervalLowerBound: 0, scalingAdjustment: -1}]",
    ))
    .replace("ChangeInCapacity", "ExactCapacity");
    assert_eq!(
        err(&exact).field,
        format!("{at}.stepAdjustments[0].scalingAdjustment")
    );
    let e = err(&step_policy(&format!(
        "{one}      metricAggregationType: Median\n"
    )));
    assert_eq!(e.field, format!("{at}.metricAggregationType"));
    let e = err(&step_policy(&one).replace(
        "threshold: 80",
        "threshold: 80\n        evaluationSeconds: 0",
    ));
    assert_eq!(e.field, format!("{at}.alarm.evaluationSeconds"));
    let e = err(&step_policy(&one).replace(
        "{predefinedMetricType: ECSServiceAverageCPUUtilization}",
        "{predefinedMetricType: ALBRequestCountPerTarget}",
    ));
    assert_eq!(
        e.field,
        format!("{at}.alarm.metric.predefinedMetricSpecification.resourceLabel")
    );
    let e = err(&step_policy(&one).replace("        threshold: 80\n", ""));
    assert_eq!(e.field, format!("{at}.alarm"));
    assert!(e.message.contains("threshold"), "{e}");
}

const ACTION: &str = r#"
scheduledActions:
  - scheduledActionName: night
    resourceId: service/default/web
    schedule: cron(0 22 * * ? *)
    timezone: Europe/Paris
    startTime: 2026-12-01T08:00:00+01:00
    scalableTargetAction: {minCapacity: 1, maxCapacity: 2}
"#;

#[test]
fn scheduled_actions() {
    let s = stack(&format!("{TARGET}{ACTION}"));
    s.validate().unwrap();
    let a = &s.scheduled_actions[0];
    // 2026-12-01T07:00:00Z
    assert_eq!(a.start_time, Some(1_796_108_400.0));
    let cases = [
        (
            "schedule: cron(0 22 * * ? *)",
            "schedule: every night",
            "schedule",
        ),
        (
            "schedule: cron(0 22 * * ? *)",
            "schedule: cron()",
            "schedule",
        ),
        ("timezone: Europe/Paris", "timezone: Paris time", "timezone"),
        (
            "minCapacity: 1, maxCapacity: 2",
            "minCapacity: 3, maxCapacity: 2",
            "scalableTargetAction.minCapacity",
        ),
        (
            "{minCapacity: 1, maxCapacity: 2}",
            "{}",
            "scalableTargetAction",
        ),
        (
            "scheduledActionName: night",
            "scheduledActionName: a/b",
            "scheduledActionName",
        ),
        (
            "startTime: 2026-12-01T08:00:00+01:00",
            "startTime: 2026-13-01T08:00:00Z",
            "startTime",
        ),
        (
            "startTime: 2026-12-01T08:00:00+01:00",
            "startTime: 2026-12-01T08:00:00Z\n    endTime: 2026-11-01T08:00:00Z",
            "endTime",
        ),
    ];
    for (from, to, field) in cases {
        let e = err(&format!("{TARGET}{}", ACTION.replace(from, to)));
        assert_eq!(e.field, format!("scheduledActions[0].{field}"), "{to}: {e}");
    }
    let e = err(&format!(
        "{TARGET}{ACTION}{}",
        ACTION.replace("scheduledActions:\n", "")
    ));
    assert_eq!(e.field, "scheduledActions[1].scheduledActionName");
}

#[test]
fn rfc3339_times() {
    use super::scheduled::parse_rfc3339;
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800.0));
    assert_eq!(
        parse_rfc3339("2024-02-29T12:00:00.5-02:30"),
        Some(1_709_217_000.5)
    );
    assert_eq!(parse_rfc3339("2023-02-29T12:00:00Z"), None);
    assert_eq!(parse_rfc3339("2023-02-28 12:00"), None);
}

const SERVICE_STACK: &str = r#"
taskDefinitions:
  - family: web
    containerDefinitions:
      - {name: app, image: whoami, portMappings: [{containerPort: 8080}]}
targetGroups: [{targetGroupName: web}, {targetGroupName: other}]
loadBalancers:
  - loadBalancerName: web
    listeners:
      - {port: 80, protocol: HTTP, defaultActions: [{type: forward, targetGroupName: web}]}
services:
  - serviceName: web
    taskDefinition: web
    loadBalancers: [{targetGroupName: web, containerName: app, containerPort: 8080}]
"#;

#[test]
fn a_resource_label_must_name_a_target_group_of_the_service_and_its_load_balancer() {
    let policy = |label: &str| {
        format!(
            "{SERVICE_STACK}{}",
            tt_policy(&format!(
                "      targetValue: 100\n      predefinedMetricSpecification: {{predefinedMetricType: ALBRequestCountPerTarget, resourceLabel: {label}}}\n"
            ))
        )
    };
    stack(&policy("app/web/targetgroup/web"))
        .validate()
        .unwrap();
    let field = "scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.resourceLabel";
    let e = err(&policy("app/web/targetgroup/other"));
    assert_eq!(e.field, field);
    assert!(
        e.message
            .contains("not one of service/default/web's loadBalancers"),
        "{e}"
    );
    // The service uses "other" but the load balancer does not forward to it.
    let e = err(&policy("app/web/targetgroup/other").replace(
        "loadBalancers: [{targetGroupName: web, containerName",
        "loadBalancers: [{targetGroupName: other, containerName",
    ));
    assert_eq!(e.field, field);
    assert!(e.message.contains("does not forward"), "{e}");
}
