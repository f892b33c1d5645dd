"""Drives berth's AWS front door with boto3, unchanged: ECS (a cluster, a task
definition, a service, paginators and waiters), then Application Auto Scaling (a
scalable target, a target tracking policy, a scheduled action, read back).

The endpoint comes from BERTH_ENDPOINT; credentials and region from the environment
(the test gives the admin's access key of its server, which has authentication on). Every check is an assert,
so a failure exits non-zero with the reason; the last line printed is a JSON summary.
"""

import json
import os
import sys
import time

import boto3
import botocore.exceptions

ENDPOINT = os.environ["BERTH_ENDPOINT"]


def client(name):
    return boto3.client(name, endpoint_url=ENDPOINT, region_name="us-east-1")


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e.response["Error"]["Message"]
    raise AssertionError(f"expected {code}, the call succeeded")


def ecs_flow(summary):
    ecs = client("ecs")
    ecs.create_cluster(clusterName="boto")
    td = ecs.register_task_definition(
        family="whoami",
        networkMode="bridge",
        containerDefinitions=[
            {
                "name": "web",
                "image": "berth-whoami:latest",
                "entryPoint": ["berth-whoami"],
                "cpu": 64,
                "memoryReservation": 32,
                "essential": True,
                "portMappings": [{"containerPort": 8080, "hostPort": 0}],
                "stopTimeout": 5,
            }
        ],
    )["taskDefinition"]
    assert td["revision"] == 1, td
    for rev in (2, 3):
        again = ecs.register_task_definition(
            family="whoami",
            networkMode="bridge",
            containerDefinitions=[
                {
                    "name": "web",
                    "image": "berth-whoami:latest",
                    "entryPoint": ["berth-whoami"],
                    "cpu": 64,
                    "memoryReservation": 32,
                    "essential": True,
                    "environment": [{"name": "REVISION", "value": str(rev)}],
                    "portMappings": [{"containerPort": 8080, "hostPort": 0}],
                    "stopTimeout": 5,
                }
            ],
        )["taskDefinition"]
        assert again["revision"] == rev, again

    # Paginators walk pages of one.
    pages = list(
        ecs.get_paginator("list_task_definitions").paginate(
            familyPrefix="whoami", PaginationConfig={"PageSize": 1}
        )
    )
    arns = [a for p in pages for a in p["taskDefinitionArns"]]
    assert len(pages) == 3 and len(arns) == 3, pages
    assert [a.rsplit(":", 1)[1] for a in arns] == ["1", "2", "3"], arns
    summary["taskDefinitionPages"] = len(pages)

    svc = ecs.create_service(
        serviceName="web", taskDefinition="whoami:3", desiredCount=3
    )["service"]
    assert svc["status"] == "ACTIVE", svc
    ecs.get_waiter("services_stable").wait(
        services=["web"], WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    got = ecs.describe_services(services=["web", "missing"])
    assert got["services"][0]["runningCount"] == 3, got
    assert got["failures"][0]["reason"] == "MISSING", got

    task_pages = list(
        ecs.get_paginator("list_tasks").paginate(
            serviceName="web", PaginationConfig={"PageSize": 2}
        )
    )
    task_arns = [a for p in task_pages for a in p["taskArns"]]
    assert len(task_pages) == 2 and len(task_arns) == 3, task_pages
    ecs.get_waiter("tasks_running").wait(
        tasks=task_arns, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    summary["tasks"] = len(task_arns)

    expect_error("ClusterNotFoundException", ecs.list_services, cluster="nope")
    expect_error(
        "ServiceNotFoundException", ecs.update_service, service="nope", desiredCount=1
    )
    return ecs


def autoscaling_flow(summary):
    aas = client("application-autoscaling")
    aas.register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=2,
        MaxCapacity=5,
    )
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert len(targets) == 1, targets
    t = targets[0]
    assert (t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) == (
        "service/default/web",
        2,
        5,
    ), t
    assert t["ScalableTargetARN"], t

    put = aas.put_scaling_policy(
        PolicyName="cpu50",
        ServiceNamespace="ecs",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 50.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            },
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 120,
        },
    )
    assert "cpu50" in put["PolicyARN"], put
    policies = aas.describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId="service/default/web"
    )["ScalingPolicies"]
    assert len(policies) == 1, policies
    p = policies[0]
    assert p["PolicyName"] == "cpu50" and p["PolicyType"] == "TargetTrackingScaling", p
    c = p["TargetTrackingScalingPolicyConfiguration"]
    assert c["TargetValue"] == 50.0 and c["ScaleInCooldown"] == 120, c
    assert (
        c["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "ECSServiceAverageCPUUtilization"
    ), c

    aas.put_scheduled_action(
        ServiceNamespace="ecs",
        ScheduledActionName="nightly",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
        Schedule="cron(0 2 * * ? *)",
        ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 3},
    )
    actions = aas.describe_scheduled_actions(ServiceNamespace="ecs")[
        "ScheduledActions"
    ]
    assert [a["ScheduledActionName"] for a in actions] == ["nightly"], actions
    assert actions[0]["ScalableTargetAction"]["MaxCapacity"] == 3, actions
    aas.describe_scaling_activities(
        ServiceNamespace="ecs", ResourceId="service/default/web"
    )

    expect_error(
        "ValidationException",
        aas.register_scalable_target,
        ServiceNamespace="dynamodb",
        ResourceId="table/x",
        ScalableDimension="dynamodb:table:ReadCapacityUnits",
        MinCapacity=1,
        MaxCapacity=2,
    )
    expect_error(
        "ObjectNotFoundException",
        aas.delete_scaling_policy,
        PolicyName="nope",
        ServiceNamespace="ecs",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
    )

    aas.delete_scheduled_action(
        ServiceNamespace="ecs",
        ScheduledActionName="nightly",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
    )
    aas.delete_scaling_policy(
        PolicyName="cpu50",
        ServiceNamespace="ecs",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
    )
    aas.deregister_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/default/web",
        ScalableDimension="ecs:service:DesiredCount",
    )
    left = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert left == [], left
    summary["policyType"] = p["PolicyType"]
    summary["scheduledActions"] = len(actions)


def main():
    summary = {}
    ecs = ecs_flow(summary)
    autoscaling_flow(summary)
    ecs.delete_service(service="web", force=True)
    # berth forgets a deleted service once its tasks stopped (ECS lists it INACTIVE a
    # while): poll, bounded, until it is INACTIVE or gone.
    deadline = time.monotonic() + 120
    while True:
        got = ecs.describe_services(services=["web"])
        if got["failures"] or got["services"][0]["status"] == "INACTIVE":
            break
        assert time.monotonic() < deadline, f"web still {got['services'][0]['status']}"
        time.sleep(0.5)
    summary["deleted"] = True
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
