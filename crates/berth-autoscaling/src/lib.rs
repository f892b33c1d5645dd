//! berth's scaling engine: Application Auto Scaling's decisions for an ECS service's
//! desired count, from target tracking policies, step scaling policies and scheduled
//! actions, with AWS's cooldowns, bounds, suspension flags and wording.
//!
//! The engine is pure: no I/O, no store, no clock and no async runtime. Instants, metric
//! samples and the target's state come in as values; a decision comes out. The
//! autoscaler reconciler in the control plane maps the stored resources onto the compiled
//! rules here, collects the samples, calls [`evaluate`] and applies and records what it
//! returns (updating [`RecentActivity`] with [`RecentActivity::record`]). Parsing stack
//! files is not done here; [`Schedule::parse`] is public so that validation can use it.
//!
//! One evaluation, as the reconciler runs it every few seconds:
//!
//! ```
//! use std::time::Duration;
//! use berth_autoscaling::{
//!     evaluate, CapacityBounds, EvaluationInput, MetricSeries, Policy, PolicyInput,
//!     RecentActivity, SuspendedState, TargetState, TargetTrackingRule, Timestamp,
//! };
//!
//! let now = Timestamp::from_second(1_767_571_200).unwrap();
//! // Ten seconds of 250 requests per target per minute, one sample a second.
//! let mut requests = MetricSeries::new();
//! for age in 0..10 {
//!     requests.push(now.checked_sub(Duration::from_secs(age)).unwrap(), 250.0);
//! }
//! let policy = Policy::TargetTracking(TargetTrackingRule::new(
//!     "requests-100",
//!     "ALBRequestCountPerTarget",
//!     100.0,
//! ));
//! let mut target = TargetState {
//!     resource_id: "service/default/web".into(),
//!     bounds: CapacityBounds::new(1, 10).unwrap(),
//!     suspended: SuspendedState::default(),
//!     desired: 3,
//!     deployment_in_progress: false,
//!     activity: RecentActivity::default(),
//! };
//! let evaluation = evaluate(&EvaluationInput {
//!     target: &target,
//!     policies: &[PolicyInput { policy: &policy, metric: &requests }],
//!     scheduled_actions: &[],
//!     scheduled_since: now,
//!     now,
//! });
//! let change = evaluation.change.expect("3 tasks at 2.5 x the target scale out");
//! assert_eq!(change.description, "Setting desired count to 8.");
//! // The reconciler sets the service's desired count, then notes the change so that the
//! // cooldowns count from it.
//! target.activity.record(&change, now);
//! target.desired = change.to;
//! ```
//!
//! Layout, in dependency order (a module uses only modules above it):
//! - [`window`]: sample series and their aggregation over a window; missing data.
//! - [`error`]: [`RuleError`] and [`ScheduleError`], naming the field and what is allowed.
//! - [`outcome`]: a decision's vocabulary: [`CapacityChange`], [`NotScaledCode`], ...
//! - [`adjustment`]: capacity arithmetic: proportional, gradual, the adjustment types.
//! - [`target`]: a scalable target's bounds, suspension, desired count, recent activity.
//! - `assessment`: what one policy concludes from its metric, before the target's rules.
//! - [`target_tracking`]: [`TargetTrackingRule`], the proportional/gradual rule.
//! - [`step`]: [`StepRule`], step adjustments relative to an alarm threshold.
//! - [`cron`]: AWS's six-field cron expressions.
//! - [`schedule`]: [`Schedule`]: `at()`, `rate()`, `cron()` in a time zone.
//! - [`scheduled`]: [`ScheduledAction`]: a schedule setting min/max capacity.
//! - [`decision`]: [`evaluate`]: scheduled actions, the clamp, then the policies combined.

pub mod adjustment;
mod assessment;
pub mod cron;
pub mod decision;
pub mod error;
pub mod outcome;
pub mod schedule;
pub mod scheduled;
pub mod step;
pub mod target;
pub mod target_tracking;
pub mod window;

pub use decision::{evaluate, Evaluation, EvaluationInput, Policy, PolicyInput, PolicyObservation};
pub use error::{RuleError, ScheduleError};
/// Instants in the engine's API are jiff timestamps.
pub use jiff::Timestamp;
pub use outcome::{CapacityChange, Direction, NotScaledCode, NotScaledReason, Trigger};
pub use schedule::Schedule;
pub use scheduled::ScheduledAction;
pub use step::{AdjustmentType, Comparison, StepAdjustment, StepRule};
pub use target::{CapacityBounds, RecentActivity, ScaleOutRecord, SuspendedState, TargetState};
pub use target_tracking::TargetTrackingRule;
pub use window::{MetricSeries, MissingData, Sample, Statistic, Window};

#[cfg(test)]
mod tests;
