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
    pub instance: &'a ContainerInstance,
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
    /// Tasks of the group being placed already on the instance.
    pub group_tasks: usize,
}

/// Tasks of the group being placed per value of each attribute a `spread` strategy
/// names (`None`: instances without the attribute).
pub(super) struct SpreadCounts<'a> {
    per_attribute: BTreeMap<&'a str, BTreeMap<Option<&'a str>, usize>>,
}

impl<'a> SpreadCounts<'a> {
    /// The counts for `strategies` over `instances`, `group_tasks(i)` being the tasks
    /// of the group on `instances[i]`.
    pub fn new(
        strategies: &'a [PlacementStrategy],
        instances: &'a [ContainerInstance],
        group_tasks: impl Fn(usize) -> usize,
    ) -> Self {
        let mut per_attribute = BTreeMap::new();
        for name in strategies.iter().filter_map(spread_attribute) {
            let mut counts: BTreeMap<Option<&str>, usize> = BTreeMap::new();
            for (i, inst) in instances.iter().enumerate() {
                let n = group_tasks(i);
                if n > 0 {
                    *counts
                        .entry(inst.attributes.get(name).map(String::as_str))
                        .or_insert(0) += n;
                }
            }
            per_attribute.insert(name, counts);
        }
        Self { per_attribute }
    }

    /// Counts one more task of the group on `inst`.
    pub fn add(&mut self, inst: &'a ContainerInstance) {
        for (name, counts) in &mut self.per_attribute {
            *counts
                .entry(inst.attributes.get(*name).map(String::as_str))
                .or_insert(0) += 1;
        }
    }

    fn of(&self, name: &str, inst: &ContainerInstance) -> usize {
        self.per_attribute
            .get(name)
            .and_then(|counts| counts.get(&inst.attributes.get(name).map(String::as_str)))
            .copied()
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
            keep_least(candidates, |c| spread.of(name, c.instance))
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
