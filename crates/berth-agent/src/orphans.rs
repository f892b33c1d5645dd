//! Orphans at the agent's start: tasks berth started on this node for another node (a
//! container instance or data directory whose node is not running) are reported, each in
//! a log line naming the task, what it runs, where it came from and how to remove it, and
//! counted in the gauge `berth_orphaned_tasks{cluster}`; with [`OrphanSettings::remove`]
//! the orphans of the agent's own cluster are stopped and removed, each removal logged.
//!
//! What it does not do: find the live nodes (the caller passes them in
//! [`OrphanSettings::live`]), or remove anything silently or of another cluster (a
//! machine may hold nodes of several clusters; a node of that cluster removes them).

use berth_runtime::{DynRuntime, LiveOwners, OrphanTask};

/// How the agent treats orphans when it starts.
#[derive(Debug, Clone, Default)]
pub struct OrphanSettings {
    /// The owners whose node runs on this machine: their tasks are not orphans.
    pub live: LiveOwners,
    /// Stop and remove the orphans of the agent's cluster (`--remove-orphans`).
    pub remove: bool,
    /// How to ask for removal, named in the log (e.g. `berth server --remove-orphans`).
    pub remove_hint: String,
}

/// What one orphan check found and did.
#[derive(Debug, Clone, Default)]
pub struct OrphanReport {
    pub found: Vec<OrphanTask>,
    pub removed: Vec<OrphanTask>,
}

/// The gauge of orphaned tasks by cluster, registered in `registry` (a registry that
/// already holds it keeps its own).
pub fn orphan_gauge(registry: &prometheus::Registry) -> prometheus::IntGaugeVec {
    let gauge = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "berth_orphaned_tasks",
            "Tasks berth started on this node for a node that no longer runs, found when the agent started and not removed",
        ),
        &["cluster"],
    )
    .expect("valid gauge");
    if let Err(e) = registry.register(Box::new(gauge.clone())) {
        tracing::debug!("berth_orphaned_tasks not registered: {e}");
    }
    gauge
}

/// Finds the runtime's orphans, logs each, removes those of `cluster` when asked, and
/// sets `gauge` to what remains per cluster.
pub async fn check_orphans(
    runtime: &DynRuntime,
    cluster: &str,
    settings: &OrphanSettings,
    gauge: &prometheus::IntGaugeVec,
) -> OrphanReport {
    let found = match runtime.orphans(&settings.live).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for orphaned tasks");
            return OrphanReport::default();
        }
    };
    let mut report = OrphanReport {
        found: found.clone(),
        removed: Vec::new(),
    };
    gauge.reset();
    gauge.with_label_values(&[cluster]).set(0);
    for o in &found {
        gauge.with_label_values(&[&o.cluster]).inc();
    }
    for o in &found {
        let removable = settings.remove && o.cluster == cluster;
        let how = if o.cluster == cluster {
            format!("remove it with `{}`", settings.remove_hint)
        } else {
            format!(
                "a node of cluster {} started with --remove-orphans removes it",
                o.cluster
            )
        };
        tracing::warn!(
            task = %o.task_id(),
            cluster = %o.cluster,
            runs = %o.runs.join("; "),
            ids = %o.runtime_ids.join(" "),
            from = %o.owner,
            "orphaned task {} ({}) started by {}, which no running berth node owns; {}",
            o.task_id(),
            o.runs.join("; "),
            o.owner,
            if removable { "removing it".to_string() } else { how },
        );
        if removable {
            match runtime.remove_orphan(o).await {
                Ok(()) => {
                    tracing::warn!(
                        task = %o.task_id(),
                        from = %o.owner,
                        "removed orphaned task {} ({}) started by {}",
                        o.task_id(),
                        o.runs.join("; "),
                        o.owner
                    );
                    report.removed.push(o.clone());
                    gauge.with_label_values(&[&o.cluster]).dec();
                }
                Err(e) => {
                    tracing::warn!(task = %o.task_id(), error = %e, "cannot remove orphaned task {}", o.task_id());
                }
            }
        }
    }
    report
}

#[cfg(test)]
#[path = "orphans_tests.rs"]
mod tests;
