//! Placement strategies, chained as ECS chains them: each strategy keeps the instances
//! it ranks best, and the next one chooses among those (`spread` by zone, then `binpack`
//! within the zone). `binpack` keeps the fewest remaining CPU units or MiB, `spread`
//! the fewest tasks of the group per instance (`instanceId`, `host`) or per value of an
//! attribute (`attribute:NAME`; instances without it share one value), `random` one
//! instance chosen by the seed. With no strategy: spread by instance, ties to the most
//! remaining memory.
//!
//! It only ranks instances that already passed resources and constraints.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use berth_model::ecs::{ContainerInstance, PlacementStrategy};

use super::Placed;

/// An instance that can take the task, with what it would have left.
#[derive(Clone, Copy)]
pub(super) struct Candidate<'a> {
    pub instance: &'a ContainerInstance,
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
}

/// What the strategies count tasks of.
pub(super) struct Cluster<'a, 'p> {
    pub instances: &'a [ContainerInstance],
    pub placed: &'p [Placed<'p>],
    /// The group being placed (`service:web`).
    pub group: &'p str,
}

/// The instance the strategies choose among `candidates` (not empty).
pub(super) fn choose<'a>(
    candidates: Vec<Candidate<'a>>,
    cluster: &Cluster<'_, '_>,
    strategies: &[PlacementStrategy],
    seed: u64,
) -> &'a ContainerInstance {
    let default = [PlacementStrategy {
        kind: "spread".into(),
        field: Some("instanceId".into()),
    }];
    let chain = if strategies.is_empty() {
        &default[..]
    } else {
        strategies
    };
    let mut left = candidates;
    for s in chain {
        if left.len() <= 1 {
            break;
        }
        left = narrow(left, s, cluster, seed);
    }
    if strategies.is_empty() {
        left.sort_by_key(|c| Reverse(c.remaining_memory));
    }
    left[0].instance
}

/// The candidates `strategy` ranks best.
fn narrow<'a>(
    mut candidates: Vec<Candidate<'a>>,
    strategy: &PlacementStrategy,
    cluster: &Cluster<'_, '_>,
    seed: u64,
) -> Vec<Candidate<'a>> {
    match (strategy.kind.as_str(), strategy.field.as_deref()) {
        ("binpack", Some("cpu")) => keep_least(candidates, |c| c.remaining_cpu),
        ("binpack", _) => keep_least(candidates, |c| c.remaining_memory),
        ("random", _) => {
            let i = (seed % candidates.len() as u64) as usize;
            vec![candidates.swap_remove(i)]
        }
        ("spread", Some(field)) if field.starts_with("attribute:") => {
            let name = &field["attribute:".len()..];
            let per_value = cluster.group_tasks_per_value(name);
            keep_least(candidates, |c| {
                per_value
                    .get(&c.instance.attributes.get(name).map(String::as_str))
                    .copied()
                    .unwrap_or(0)
            })
        }
        ("spread", _) => keep_least(candidates, |c| cluster.group_tasks_on(c.instance)),
        _ => candidates,
    }
}

/// The candidates with the least `key`, in their order.
fn keep_least<'a, K: Ord>(
    candidates: Vec<Candidate<'a>>,
    key: impl Fn(&Candidate<'a>) -> K,
) -> Vec<Candidate<'a>> {
    let Some(least) = candidates.iter().map(&key).min() else {
        return candidates;
    };
    candidates.into_iter().filter(|c| key(c) == least).collect()
}

impl<'a> Cluster<'a, '_> {
    /// Tasks of the group on `inst`.
    fn group_tasks_on(&self, inst: &ContainerInstance) -> usize {
        self.placed
            .iter()
            .filter(|p| p.task.group == self.group)
            .filter(|p| {
                p.task.container_instance_arn.as_deref() == Some(&inst.container_instance_arn)
            })
            .count()
    }

    /// Tasks of the group per value of attribute `name` of their instance (`None`: the
    /// instance has no such attribute).
    fn group_tasks_per_value(&self, name: &str) -> BTreeMap<Option<&'a str>, usize> {
        let mut counts = BTreeMap::new();
        for p in self.placed.iter().filter(|p| p.task.group == self.group) {
            let Some(inst) = self.instances.iter().find(|i| {
                p.task.container_instance_arn.as_deref() == Some(&i.container_instance_arn)
            }) else {
                continue;
            };
            *counts
                .entry(inst.attributes.get(name).map(String::as_str))
                .or_insert(0) += 1;
        }
        counts
    }
}
