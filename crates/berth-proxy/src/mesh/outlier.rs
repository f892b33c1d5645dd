//! Outlier detection for mesh target groups, as Envoy's passive health checking does it:
//! a target answering a run of 5xx responses (or failing to connect that many times) is
//! ejected for a while, longer each time, within the group's ejection cap. It keeps
//! nothing of its own: the counts are the target's atomics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::MeshGroup;
use crate::group::GroupRuntime;
use crate::target::TargetState;

/// Outlier detection: `target` of mesh group `group` answered with a 5xx or could not be
/// connected to (`failed`), or answered with anything else. A run of
/// `consecutive_failures` failures ejects it, unless the group already has its share of
/// targets ejected (`max_ejection_percent`, at least one).
pub(crate) fn observe(group: &GroupRuntime, mesh: &MeshGroup, target: &TargetState, failed: bool) {
    if !failed {
        target.outlier_succeeded();
        return;
    }
    let needed = mesh.consecutive_failures.load(Ordering::Relaxed);
    // While ejected (and still tried, the group failing open), failures do not count
    // towards the next ejection.
    if needed == 0 || target.is_outlier_ejected() || target.outlier_failed() < needed {
        return;
    }
    let (ejected, total) = group.outlier_counts();
    let pct = mesh.max_ejection_percent.load(Ordering::Relaxed) as usize;
    let allowed = (total * pct / 100).max(1);
    if ejected >= allowed {
        return;
    }
    let ms = target.eject_outlier(mesh.base_ejection_ms.load(Ordering::Relaxed));
    mesh.metrics.ejections.inc();
    tracing::info!(
        target = %target.addr,
        namespace = %mesh.namespace,
        discovery_name = %mesh.discovery_name,
        seconds = ms / 1000,
        "outlier detection ejected a target"
    );
    group.ejection_changed(Duration::from_millis(ms));
}
