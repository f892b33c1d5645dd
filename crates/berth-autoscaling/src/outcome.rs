//! The vocabulary of a decision: which way a change goes, what triggered it, the change
//! in AWS's words, and the codes for not scaling. Plain data; the rules that produce it
//! live in [`crate::decision`].

/// Which way a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// What made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A scaling policy: the change starts that direction's cooldown.
    Policy { name: String },
    /// A scheduled action's new bounds clamped the desired count.
    ScheduledAction { name: String },
    /// The desired count was outside the target's bounds.
    Bounds,
}

/// A new desired count, in AWS's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityChange {
    pub from: u32,
    pub to: u32,
    pub direction: Direction,
    pub trigger: Trigger,
    /// "Setting desired count to 4."
    pub description: String,
    /// "monitor alarm ... in state ALARM triggered policy ...", with the metric value.
    pub cause: String,
}

impl CapacityChange {
    /// The change from `from` to `to` tasks, described as AWS describes it.
    pub fn new(from: u32, to: u32, trigger: Trigger, cause: String) -> Self {
        CapacityChange {
            from,
            to,
            direction: if to > from {
                Direction::Out
            } else {
                Direction::In
            },
            trigger,
            description: format!("Setting desired count to {to}."),
            cause,
        }
    }
}

/// Why a policy (or the target) did not scale. AWS's `NotScaledReason` codes where AWS
/// has one (`AlreadyAtMaxCapacity`, `AlreadyAtMinCapacity`, `AlreadyAtDesiredCapacity`),
/// berth's own for the reasons AWS does not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotScaledCode {
    AlreadyAtMaxCapacity,
    AlreadyAtMinCapacity,
    AlreadyAtDesiredCapacity,
    /// The metric is inside the tolerance band, or the step alarm is not breached.
    WithinTarget,
    /// The window held too few samples.
    MissingData,
    ScaleOutCooldown,
    ScaleInCooldown,
    DynamicScalingOutSuspended,
    DynamicScalingInSuspended,
    ScheduledScalingSuspended,
    DeploymentInProgress,
    /// The metric is low but the policy has `disableScaleIn`.
    ScaleInDisabled,
    /// The policy is ready to scale in but another policy is not.
    ScaleInNotAgreed,
    /// The step alarm is breached but the metric falls in no step's interval.
    NoStepForMetric,
}

impl NotScaledCode {
    pub fn as_str(self) -> &'static str {
        match self {
            NotScaledCode::AlreadyAtMaxCapacity => "AlreadyAtMaxCapacity",
            NotScaledCode::AlreadyAtMinCapacity => "AlreadyAtMinCapacity",
            NotScaledCode::AlreadyAtDesiredCapacity => "AlreadyAtDesiredCapacity",
            NotScaledCode::WithinTarget => "WithinTarget",
            NotScaledCode::MissingData => "MissingData",
            NotScaledCode::ScaleOutCooldown => "ScaleOutCooldown",
            NotScaledCode::ScaleInCooldown => "ScaleInCooldown",
            NotScaledCode::DynamicScalingOutSuspended => "DynamicScalingOutSuspended",
            NotScaledCode::DynamicScalingInSuspended => "DynamicScalingInSuspended",
            NotScaledCode::ScheduledScalingSuspended => "ScheduledScalingSuspended",
            NotScaledCode::DeploymentInProgress => "DeploymentInProgress",
            NotScaledCode::ScaleInDisabled => "ScaleInDisabled",
            NotScaledCode::ScaleInNotAgreed => "ScaleInNotAgreed",
            NotScaledCode::NoStepForMetric => "NoStepForMetric",
        }
    }
}

impl std::fmt::Display for NotScaledCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason for not scaling, naming the policy or scheduled action it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotScaledReason {
    /// The policy or scheduled action; `None` for the target as a whole.
    pub source: Option<String>,
    pub code: NotScaledCode,
    pub detail: String,
}
