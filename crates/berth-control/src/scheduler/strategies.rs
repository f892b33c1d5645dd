//! Placement strategies, chained as ECS chains them: each strategy keeps the instances
//! it ranks best, and the next one chooses among those (`spread` by zone, then `binpack`
//! within the zone). `binpack` keeps the fewest remaining CPU units or MiB, `spread`
//! the fewest tasks of the group per instance (`instanceId`, `host`) or per value of an
//! attribute (`attribute:NAME`; instances without it share one value), `random` one
//! instance chosen by the seed. With no strategy: spread by instance, ties to the most
//! remaining memory.
//!
//! It only ranks instances that already passed resources and constraints; the counts
//! it ranks by are kept by the placement round ([`super::round`]).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use berth_model::ecs::{ContainerInstance, PlacementStrategy};

/// An instance that can take the task, with what it would have left.
#[derive(Clone, Copy)]
pub(super) struct Candidate<'a> {
    /// Its index in the round's instances.
    pub index: usize,
    pub instance: &'a ContainerInstance,
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
    /// Tasks of the group being placed already on the instance.
    pub group_tasks: usize,
}

/// Tasks of the group being placed per value of each attribute a `spread` strategy
/// names (instances without the attribute share one value).
pub(super) struct SpreadCounts<'a> {
    per_attribute: BTreeMap<&'a str, ValueCounts>,
}

/// One attribute's values numbered: the value of each instance, the tasks per value.
struct ValueCounts {
    value_of: Vec<usize>,
    tasks: Vec<usize>,
}

impl<'a> SpreadCounts<'a> {
    /// The counts for `strategies` over `instances`, `group_tasks(i)` being the tasks
    /// of the group on `instances[i]`.
    pub fn new(
        strategies: &'a [PlacementStrategy],
        instances: &[ContainerInstance],
        group_tasks: impl Fn(usize) -> usize,
    ) -> Self {
        let mut per_attribute = BTreeMap::new();
        for name in strategies.iter().filter_map(spread_attribute) {
            let mut numbers: BTreeMap<Option<&str>, usize> = BTreeMap::new();
            let value_of: Vec<usize> = instances
                .iter()
                .map(|inst| {
                    let next = numbers.len();
                    *numbers
                        .entry(inst.attributes.get(name).map(String::as_str))
                        .or_insert(next)
                })
                .collect();
            let mut tasks = vec![0; numbers.len()];
            for (i, v) in value_of.iter().enumerate() {
                tasks[*v] += group_tasks(i);
            }
            per_attribute.insert(name, ValueCounts { value_of, tasks });
        }
        Self { per_attribute }
    }

    /// Counts one more task of the group on the instance at `index`.
    pub fn add(&mut self, index: usize) {
        for counts in self.per_attribute.values_mut() {
            counts.tasks[counts.value_of[index]] += 1;
        }
    }

    fn of(&self, name: &str, index: usize) -> usize {
        self.per_attribute
            .get(name)
            .map(|c| c.tasks[c.value_of[index]])
            .unwrap_or(0)
    }
}

/// The attribute a `spread` strategy spreads over, if it names one.
fn spread_attribute(s: &PlacementStrategy) -> Option<&str> {
    if s.kind != "spread" {
        return None;
    }
    s.field.as_deref()?.strip_prefix("attribute:")
}

/// The instance the strategies choose among `candidates` (not empty).
pub(super) fn choose<'a>(
    candidates: Vec<Candidate<'a>>,
    spread: &SpreadCounts<'_>,
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
        left = narrow(left, s, spread, seed);
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
    spread: &SpreadCounts<'_>,
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
            keep_least(candidates, |c| spread.of(name, c.index))
        }
        ("spread", _) => keep_least(candidates, |c| c.group_tasks),
        _ => candidates,
    }
}

/// The candidates with the least `key`, in their order.
fn keep_least<'a, K: Ord>(
    mut candidates: Vec<Candidate<'a>>,
    key: impl Fn(&Candidate<'a>) -> K,
) -> Vec<Candidate<'a>> {
    let Some(least) = candidates.iter().map(&key).min() else {
        return candidates;
    };
    candidates.retain(|c| key(c) == least);
    candidates
}
