//! `dependsOn` ordering: containers start in dependency order and stop in reverse. A
//! `volumesFrom` source and a container named in `links` count as dependencies for the
//! order (the source must exist before the one mounting its volumes is created, and
//! Docker links only to a running container; ECS starts linked containers first too),
//! not for the waits. It orders; it does not wait (that is [`super::wait`]).

use berth_model::ecs::TaskDefinition;

/// Each container's depth in the dependency graph (`dependsOn`, `volumesFrom` sources
/// and `links`): 0 with no dependencies, else one more than its deepest dependency. Fails naming an unknown container or a cycle.
pub(crate) fn levels(td: &TaskDefinition) -> Result<Vec<usize>, String> {
    let defs = &td.container_definitions;
    let index = |name: &str| defs.iter().position(|c| c.name == name);
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; defs.len()];
    let mut level = vec![0usize; defs.len()];

    fn visit(
        i: usize,
        td: &TaskDefinition,
        index: &dyn Fn(&str) -> Option<usize>,
        mark: &mut [u8],
        level: &mut [usize],
    ) -> Result<usize, String> {
        let c = &td.container_definitions[i];
        match mark[i] {
            2 => return Ok(level[i]),
            1 => {
                return Err(format!(
                    "dependsOn, volumesFrom or links of container {} form a cycle",
                    c.name
                ))
            }
            _ => {}
        }
        mark[i] = 1;
        let mut l = 0;
        let volume_sources = c
            .volumes_from
            .iter()
            .filter_map(|v| v.source_container.as_deref());
        let depends_on = c.depends_on.iter().map(|d| d.container_name.as_str());
        let linked = c
            .links
            .iter()
            .map(|l| l.split_once(':').map_or(l.as_str(), |(name, _)| name));
        for name in depends_on.chain(volume_sources).chain(linked) {
            let j = index(name).ok_or_else(|| {
                format!(
                    "container {} depends on {name}, which is not in the task definition",
                    c.name
                )
            })?;
            l = l.max(visit(j, td, index, mark, level)? + 1);
        }
        mark[i] = 2;
        level[i] = l;
        Ok(l)
    }

    for i in 0..defs.len() {
        visit(i, td, &index, &mut mark, &mut level)?;
    }
    Ok(level)
}

/// Container indices in an order that starts every dependency before its dependents
/// (definition order among containers of the same depth).
pub(crate) fn start_order(td: &TaskDefinition) -> Result<Vec<usize>, String> {
    let level = levels(td)?;
    let mut order: Vec<usize> = (0..level.len()).collect();
    order.sort_by_key(|&i| level[i]);
    Ok(order)
}

/// Groups of containers to stop one after the other; the containers of one group do not
/// depend on each other and can stop together. Dependents stop before their dependencies.
pub(crate) fn stop_groups(td: &TaskDefinition) -> Vec<Vec<usize>> {
    let level = levels(td).unwrap_or_else(|_| vec![0; td.container_definitions.len()]);
    let max = level.iter().copied().max().unwrap_or(0);
    (0..=max)
        .rev()
        .map(|l| {
            (0..level.len())
                .filter(|&i| level[i] == l)
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ecs::{ContainerDefinition, ContainerDependency, DependencyCondition};

    fn td(deps: &[(&str, &[&str])]) -> TaskDefinition {
        let defs = deps
            .iter()
            .map(|(name, on)| {
                let mut c: ContainerDefinition = serde_json::from_value(serde_json::json!({
                    "name": name, "image": "x"
                }))
                .unwrap();
                c.depends_on = on
                    .iter()
                    .map(|d| ContainerDependency {
                        container_name: d.to_string(),
                        condition: DependencyCondition::Start,
                    })
                    .collect();
                c
            })
            .collect::<Vec<_>>();
        serde_json::from_value(serde_json::json!({
            "family": "f",
            "containerDefinitions": defs,
        }))
        .unwrap()
    }

    #[test]
    fn orders_dependencies_first_and_stops_in_reverse() {
        let t = td(&[
            ("app", &["db", "init"]),
            ("db", &["init"]),
            ("init", &[]),
            ("side", &[]),
        ]);
        assert_eq!(start_order(&t).unwrap(), vec![2, 3, 1, 0]);
        assert_eq!(stop_groups(&t), vec![vec![0], vec![1], vec![2, 3]]);
    }

    #[test]
    fn a_volumes_from_source_starts_first() {
        let mut t = td(&[("app", &[]), ("data", &[])]);
        t.container_definitions[0].volumes_from = vec![berth_model::ecs::VolumeFrom {
            source_container: Some("data".into()),
            read_only: None,
        }];
        assert_eq!(start_order(&t).unwrap(), vec![1, 0]);
    }

    #[test]
    fn a_linked_container_starts_first() {
        let mut t = td(&[("web", &[]), ("db", &[]), ("cache", &[])]);
        t.container_definitions[0].links = vec!["db:database".into(), "cache".into()];
        assert_eq!(start_order(&t).unwrap(), vec![1, 2, 0]);
        assert_eq!(stop_groups(&t), vec![vec![0], vec![1, 2]]);
        t.container_definitions[1].links = vec!["web".into()];
        assert!(start_order(&t).unwrap_err().contains("cycle"));
    }

    #[test]
    fn rejects_cycles_and_unknown_names() {
        let t = td(&[("a", &["b"]), ("b", &["a"])]);
        assert!(start_order(&t).unwrap_err().contains("cycle"));
        let t = td(&[("a", &["nope"])]);
        assert!(start_order(&t).unwrap_err().contains("nope"));
    }
}
