use super::*;
use berth_model::ecs::{Resource, TaskStatus};

fn inst(id: &str, cpu: i64, mem: i64) -> ContainerInstance {
    ContainerInstance {
        container_instance_arn: id.into(),
        status: "ACTIVE".into(),
        agent_connected: true,
        registered_resources: vec![
            Resource {
                name: "CPU".into(),
                integer_value: cpu,
                ..Default::default()
            },
            Resource {
                name: "MEMORY".into(),
                integer_value: mem,
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn td(mem: u32, host_port: Option<u32>) -> TaskDefinition {
    serde_json::from_value(serde_json::json!({
        "family": "web",
        "containerDefinitions": [{"name": "a", "image": "x", "memory": mem,
            "portMappings": [{"containerPort": 80, "hostPort": host_port}]}]
    }))
    .unwrap()
}

#[test]
fn spreads_and_checks_resources_and_ports() {
    let insts = vec![inst("i-1", 1024, 1000), inst("i-2", 1024, 1000)];
    let t = Task {
        container_instance_arn: Some("i-1".into()),
        group: "service:web".into(),
        ..Default::default()
    };
    let placed = vec![Placed {
        task: &t,
        cpu: 0,
        memory: 600,
        ports: vec![8080],
    }];
    // spread: i-2 has fewer tasks of the group
    assert_eq!(
        place(&insts, &placed, &td(100, None), "service:web", &[], &[], 0).unwrap(),
        "i-2"
    );
    // memory: 600 + 500 > 1000 on i-1
    let only1 = vec![inst("i-1", 1024, 1000)];
    let e = place(&only1, &placed, &td(500, None), "service:web", &[], &[], 0).unwrap_err();
    assert!(e.0.contains("insufficient memory"), "{e:?}");
    // port conflict
    let e = place(
        &only1,
        &placed,
        &td(10, Some(8080)),
        "service:web",
        &[],
        &[],
        0,
    )
    .unwrap_err();
    assert!(e.0.contains("already using a port"), "{e:?}");
    // binpack memory: pick the fuller instance
    let bp = [PlacementStrategy {
        kind: "binpack".into(),
        field: Some("memory".into()),
    }];
    assert_eq!(
        place(&insts, &placed, &td(100, None), "service:web", &[], &bp, 0).unwrap(),
        "i-1"
    );
}

/// An instance with 4096 CPU units and 4000 MiB in `zone`.
fn in_zone(id: &str, zone: &str) -> ContainerInstance {
    let mut i = inst(id, 4096, 4000);
    i.attributes.insert("zone".into(), zone.into());
    i
}

fn task(instance: &str, group: &str, status: TaskStatus) -> Task {
    Task {
        container_instance_arn: Some(instance.into()),
        group: group.into(),
        last_status: status,
        ..Default::default()
    }
}

fn placed_all(tasks: &[Task], memory: i64) -> Vec<Placed<'_>> {
    tasks
        .iter()
        .map(|t| Placed {
            task: t,
            cpu: 0,
            memory,
            ports: vec![],
        })
        .collect()
}

fn member_of(expression: &str) -> PlacementConstraint {
    PlacementConstraint {
        kind: "memberOf".into(),
        expression: Some(expression.into()),
    }
}

fn strategy(kind: &str, field: Option<&str>) -> PlacementStrategy {
    PlacementStrategy {
        kind: kind.into(),
        field: field.map(str::to_string),
    }
}

const WEB: &str = "service:web";

#[test]
fn strategies_chain_spread_by_attribute_then_binpack_within_the_zone() {
    let insts = vec![
        in_zone("i-1", "a"),
        in_zone("i-2", "a"),
        in_zone("i-3", "b"),
        in_zone("i-4", "b"),
    ];
    // Zone a has one web task (on i-1); zone b has none but i-4 is fuller.
    let tasks = vec![
        task("i-1", WEB, TaskStatus::Running),
        task("i-4", "service:other", TaskStatus::Running),
    ];
    let placed = placed_all(&tasks, 1000);
    let chain = [
        strategy("spread", Some("attribute:zone")),
        strategy("binpack", Some("memory")),
    ];
    let got = place(&insts, &placed, &td(100, None), WEB, &[], &chain, 0).unwrap();
    assert_eq!(
        got, "i-4",
        "zone b (fewest web tasks), then the fuller instance in it"
    );
    // Spread alone ties within zone b; the next strategy decides. spread instanceId then
    // keeps both (no web task on either); binpack cpu ties too: the first one wins.
    let chain = [
        strategy("spread", Some("attribute:zone")),
        strategy("spread", Some("instanceId")),
    ];
    assert_eq!(
        place(&insts, &placed, &td(100, None), WEB, &[], &chain, 0).unwrap(),
        "i-3"
    );
    // One web task in each zone: the zones tie, so binpack chooses among all four
    // instances: i-3 holds the most (a web task and another).
    let tasks = vec![
        task("i-1", WEB, TaskStatus::Running),
        task("i-3", WEB, TaskStatus::Running),
        task("i-3", "service:other", TaskStatus::Running),
    ];
    let placed = placed_all(&tasks, 1000);
    let chain = [
        strategy("spread", Some("attribute:zone")),
        strategy("binpack", Some("memory")),
    ];
    assert_eq!(
        place(&insts, &placed, &td(100, None), WEB, &[], &chain, 0).unwrap(),
        "i-3"
    );
}

#[test]
fn spread_by_an_attribute_counts_instances_without_it_as_one_value() {
    let mut bare = inst("i-9", 4096, 4000);
    bare.attributes.clear();
    let insts = vec![in_zone("i-1", "a"), bare];
    let tasks = vec![
        task("i-9", WEB, TaskStatus::Running),
        task("i-9", WEB, TaskStatus::Pending),
    ];
    let placed = placed_all(&tasks, 10);
    let chain = [strategy("spread", Some("attribute:zone"))];
    assert_eq!(
        place(&insts, &placed, &td(100, None), WEB, &[], &chain, 0).unwrap(),
        "i-1"
    );
}

#[test]
fn binpack_by_cpu_and_random_by_seed() {
    let mut insts = vec![
        inst("i-1", 2048, 4000),
        inst("i-2", 1024, 4000),
        inst("i-3", 4096, 4000),
    ];
    let mut cpu_td = td(10, None);
    cpu_td.cpu = Some("512".into());
    let chain = [strategy("binpack", Some("cpu"))];
    assert_eq!(
        place(&insts, &[], &cpu_td, WEB, &[], &chain, 0).unwrap(),
        "i-2"
    );
    let random = [strategy("random", None)];
    let picks: Vec<String> = (0..3)
        .map(|seed| place(&insts, &[], &cpu_td, WEB, &[], &random, seed).unwrap())
        .collect();
    assert_eq!(
        picks,
        ["i-1", "i-2", "i-3"],
        "seed n picks candidate n mod 3"
    );
    // random chooses among what the constraints leave.
    insts[1].attributes.insert("zone".into(), "b".into());
    let only_b = [member_of("attribute:zone == b")];
    for seed in 0..3 {
        assert_eq!(
            place(&insts, &[], &cpu_td, WEB, &only_b, &random, seed).unwrap(),
            "i-2"
        );
    }
}

#[test]
fn member_of_with_and_or_in_and_patterns_filters_instances() {
    let mut insts = vec![
        in_zone("i-1", "a"),
        in_zone("i-2", "b"),
        in_zone("i-3", "c"),
    ];
    insts[0].attributes.insert("type".into(), "t2.small".into());
    insts[1].attributes.insert("type".into(), "m5.large".into());
    insts[2].attributes.insert("type".into(), "t2.micro".into());
    let one = |expr: &str| place(&insts, &[], &td(100, None), WEB, &[member_of(expr)], &[], 0);
    assert_eq!(one("attribute:zone == b").unwrap(), "i-2");
    assert_eq!(one("attribute:zone in [c, d]").unwrap(), "i-3");
    assert_eq!(
        one("attribute:type =~ t2\\..* and attribute:zone != a").unwrap(),
        "i-3"
    );
    assert_eq!(
        one("attribute:zone == z or attribute:type == m5.*").unwrap(),
        "i-2"
    );
    assert_eq!(one("not(attribute:zone in [a, b])").unwrap(), "i-3");
    let e = one("attribute:zone == z").unwrap_err();
    assert_eq!(
        e.0,
        "The closest matching container-instance i-1 encountered error \"MemberOf constraint unsatisfied\"."
    );
    // The task definition's constraints hold too: both must.
    let mut with_own = td(100, None);
    with_own.placement_constraints = vec![berth_model::ecs::TaskDefinitionPlacementConstraint {
        kind: "memberOf".into(),
        expression: Some("attribute:type =~ t2.*".into()),
    }];
    let svc = [member_of("attribute:zone != a")];
    assert_eq!(
        place(&insts, &[], &with_own, WEB, &svc, &[], 0).unwrap(),
        "i-3"
    );
    let svc = [member_of("attribute:zone == b")];
    assert!(place(&insts, &[], &with_own, WEB, &svc, &[], 0).is_err());
}

#[test]
fn member_of_sees_task_groups_and_running_tasks() {
    let insts = vec![
        in_zone("i-1", "a"),
        in_zone("i-2", "a"),
        in_zone("i-3", "a"),
    ];
    let tasks = [
        task("i-2", "service:db", TaskStatus::Running),
        task("i-3", "service:cache", TaskStatus::Pending),
        task("i-1", "service:db", TaskStatus::Stopped),
    ];
    // Stopped tasks hold nothing: the caller leaves them out, as starts.rs does.
    let live: Vec<Task> = tasks
        .iter()
        .filter(|t| t.last_status != TaskStatus::Stopped)
        .cloned()
        .collect();
    let placed = placed_all(&live, 10);
    let one = |expr: &str| {
        place(
            &insts,
            &placed,
            &td(100, None),
            WEB,
            &[member_of(expr)],
            &[],
            0,
        )
    };
    assert_eq!(one("task:group == service:db").unwrap(), "i-2", "affinity");
    assert_eq!(
        one("not(task:group == service:db) and task:group exists").unwrap(),
        "i-3"
    );
    // A PENDING task is on i-3 but not RUNNING: i-1 and i-3 run none.
    assert_eq!(one("runningTasksCount == 0").unwrap(), "i-1");
    assert_eq!(one("runningTasksCount > 0").unwrap(), "i-2");
    assert_eq!(one("instanceId in [i-3]").unwrap(), "i-3");
    // Anti-affinity with its own group: every placed task moves the next one on.
    let mut more = live.clone();
    let anti = [member_of("task:group != service:web")];
    let mut chosen = Vec::new();
    for _ in 0..3 {
        let placed = placed_all(&more, 10);
        let i = place(&insts, &placed, &td(100, None), WEB, &anti, &[], 0).unwrap();
        more.push(task(&i, WEB, TaskStatus::Provisioning));
        chosen.push(i);
    }
    chosen.sort();
    assert_eq!(chosen, ["i-1", "i-2", "i-3"]);
    let placed = placed_all(&more, 10);
    let e = place(&insts, &placed, &td(100, None), WEB, &anti, &[], 0).unwrap_err();
    assert!(e.0.contains("MemberOf constraint unsatisfied"), "{e:?}");
}

#[test]
fn an_expression_that_does_not_parse_fails_placement_with_its_field() {
    let insts = vec![in_zone("i-1", "a")];
    let bad = [member_of("attribute:zone zzz")];
    let e = place(&insts, &[], &td(100, None), WEB, &bad, &[], 0).unwrap_err();
    assert!(
        e.0.starts_with(
            "the service's placementConstraints[0].expression: at 15: expected an operator"
        ),
        "{e:?}"
    );
}

#[test]
fn a_daemon_counts_the_instances_its_constraints_admit() {
    let insts = [in_zone("i-1", "a"), in_zone("i-2", "b")];
    let tasks = [task("i-2", "service:db", TaskStatus::Running)];
    let refs: Vec<&Task> = tasks.iter().collect();
    let web = td(100, None);
    let holds = |expr: &str| -> Vec<bool> {
        insts
            .iter()
            .map(|i| member_of_holds(i, &refs, &web, &[member_of(expr)]))
            .collect()
    };
    assert_eq!(holds("attribute:zone == a"), [true, false]);
    assert_eq!(holds("task:group == service:db"), [false, true]);
    assert_eq!(
        insts
            .iter()
            .map(|i| member_of_holds(i, &refs, &web, &[]))
            .collect::<Vec<_>>(),
        [true, true]
    );
}

#[test]
fn a_round_places_as_one_place_call_per_task_seeing_the_ones_before() {
    let mut insts: Vec<ContainerInstance> = (0..9)
        .map(|i| in_zone(&format!("i-{i}"), ["a", "b", "c"][i % 3]))
        .collect();
    insts[4].attributes.insert("tier".into(), "batch".into());
    insts[7].status = "DRAINING".into();
    let before = vec![
        task("i-0", "service:db", TaskStatus::Running),
        task("i-1", WEB, TaskStatus::Running),
        task("i-1", WEB, TaskStatus::Pending),
        task("i-5", "", TaskStatus::Running),
    ];
    let constraints = [
        member_of("attribute:tier !exists"),
        member_of("not(task:group == service:db) and runningTasksCount < 3"),
    ];
    let chain = [
        strategy("spread", Some("attribute:zone")),
        strategy("binpack", Some("memory")),
    ];
    let td = td(700, None);
    let placed = placed_all(&before, 700);
    let mut round = PlacementRound::new(
        &insts,
        &placed,
        &td,
        WEB,
        &constraints,
        &chain,
        CapacityPool::Instances,
    );
    let mut one_by_one: Vec<Task> = Vec::new();
    let mut from_round = Vec::new();
    for n in 0..40u64 {
        let mut so_far = placed_all(&before, 700);
        so_far.extend(placed_all(&one_by_one, 700));
        let single = place(&insts, &so_far, &td, WEB, &constraints, &chain, n);
        let rounded = round.place(n).map(|i| i.container_instance_arn.clone());
        assert_eq!(rounded, single, "task {n}");
        let Ok(arn) = single else { break };
        round.record(&arn);
        from_round.push(arn.clone());
        let mut t = task(&arn, WEB, TaskStatus::Provisioning);
        t.container_instance_arn = Some(arn);
        one_by_one.push(t);
    }
    // Memory (4000 / 700: 5 per instance) ran out on the six admitted instances, which
    // held 2 (i-1) and 1 (i-5) before.
    assert_eq!(from_round.len(), 6 * 5 - 3, "{from_round:?}");
    for arn in &from_round {
        assert!(
            !["i-0", "i-4", "i-7"].contains(&arn.as_str()),
            "{from_round:?}"
        );
    }
}

#[test]
fn a_pool_admits_only_its_own_instances() {
    let mut managed = inst("m-1", 4096, 4000);
    managed.attributes.insert(
        MANAGED_CAPACITY_ATTRIBUTE.into(),
        MANAGED_CAPACITY_VALUE.into(),
    );
    let insts = vec![inst("i-1", 4096, 4000), managed];
    let td = td(100, None);
    let round = |pool, insts: &[ContainerInstance]| {
        PlacementRound::new(insts, &[], &td, WEB, &[], &[], pool)
            .place(0)
            .map(|i| i.container_instance_arn.clone())
    };
    for seed_instances in [&insts[..], &insts[..1]] {
        assert_eq!(
            round(CapacityPool::Instances, seed_instances).unwrap(),
            "i-1"
        );
    }
    assert_eq!(round(CapacityPool::Managed, &insts).unwrap(), "m-1");
    let e = round(CapacityPool::Managed, &insts[..1]).unwrap_err();
    assert!(e.0.contains("no managed capacity"), "{e:?}");
    let e = round(CapacityPool::Instances, &insts[1..]).unwrap_err();
    assert!(e.0.contains("no container instances"), "{e:?}");
}
