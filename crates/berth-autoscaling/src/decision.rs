//! One evaluation of a scalable target: scheduled actions first, then the clamp into the
//! capacity bounds, then the scaling policies; the result is the new desired count (or
//! none) with AWS's description and cause, and the reasons for not scaling as codes.
//!
//! The rules, in order:
//! 1. The latest scheduled action with a firing in `(scheduled_since, now]` sets the
//!    bounds (unless `scheduledScalingSuspended`); scheduled actions ignore cooldowns.
//! 2. A desired count outside the bounds is clamped into them, and that is this pass's
//!    change; the policies act on the next pass.
//! 3. Each policy assesses its metric. A scale-out acts unless dynamic scale-out is
//!    suspended or the target is at its maximum. Inside the scale-out cooldown it is
//!    computed from the count before the scale-out in flight (so the capacity that one
//!    added counts), and acts only when it asks for more than the desired count now. A
//!    scale-in acts unless dynamic scale-in is suspended, a deployment is in progress, the
//!    target is at its minimum, or a scale-in happened less than the scale-in cooldown ago
//!    with no scale-out since. The bounds cap both.
//! 4. Any policy may scale out; the largest capacity wins. Scale-in needs every target
//!    tracking policy with scale-in enabled to be ready to scale in (step policies only
//!    vote when their alarm asks for a decrease); the largest of the proposals wins.
//!
//! Nothing here reads a clock or the store: `now` and the samples come in as values.

use std::time::Duration;

use jiff::Timestamp;

use crate::adjustment::Computation;
use crate::assessment::Assessment;
use crate::outcome::{CapacityChange, Direction, NotScaledCode, NotScaledReason, Trigger};
use crate::scheduled::{latest_firing, ScheduledAction};
use crate::step::StepRule;
use crate::target::{CapacityBounds, TargetState};
use crate::target_tracking::TargetTrackingRule;
use crate::window::MetricSeries;

/// A compiled scaling policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    TargetTracking(TargetTrackingRule),
    Step(StepRule),
}

impl Policy {
    pub fn name(&self) -> &str {
        match self {
            Policy::TargetTracking(rule) => &rule.policy_name,
            Policy::Step(rule) => &rule.policy_name,
        }
    }

    /// The policy's metric as the engine reads it at `now` (what the autoscaler's metrics
    /// show beside the target): the scale-out window's statistic for target tracking, the
    /// alarm's aggregation for step scaling; `None` on missing data.
    pub fn observe(&self, metric: &MetricSeries, now: Timestamp) -> PolicyObservation {
        let (value, target) = match self {
            Policy::TargetTracking(rule) => (
                metric.aggregate(now, rule.scale_out_window, rule.statistic),
                rule.target_value,
            ),
            Policy::Step(rule) => (
                metric.aggregate(now, rule.window, rule.aggregation),
                rule.threshold,
            ),
        };
        PolicyObservation {
            policy: self.name().to_string(),
            value: value.ok(),
            target,
        }
    }

    /// Whether the policy must agree before anything scales in.
    fn votes_on_scale_in(&self) -> bool {
        matches!(self, Policy::TargetTracking(rule) if !rule.disable_scale_in)
    }
}

/// A policy's metric value next to its target value (target tracking) or alarm threshold
/// (step scaling).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyObservation {
    pub policy: String,
    /// `None` when the window holds too few samples.
    pub value: Option<f64>,
    pub target: f64,
}

/// A policy with its metric's recent samples.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub policy: &'a Policy,
    pub metric: &'a MetricSeries,
}

/// Everything one evaluation reads.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInput<'a> {
    pub target: &'a TargetState,
    pub policies: &'a [PolicyInput<'a>],
    pub scheduled_actions: &'a [ScheduledAction],
    /// The previous evaluation's `now`: scheduled firings in `(scheduled_since, now]` are
    /// due. On the first evaluation after a start, the last evaluation instant the
    /// reconciler kept (firings missed while it was away then apply once), or `now`.
    pub scheduled_since: Timestamp,
    pub now: Timestamp,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The bounds in force after this pass (a scheduled action may have changed them).
    pub bounds: CapacityBounds,
    /// The scheduled action that set `bounds`, when one fired.
    pub fired_action: Option<String>,
    /// The new desired count, if any.
    pub change: Option<CapacityChange>,
    /// Why each policy (or action) that did not scale did not.
    pub not_scaled: Vec<NotScaledReason>,
    /// Every policy's metric value and target, in the order of the input.
    pub observations: Vec<PolicyObservation>,
}

/// Evaluates a scalable target once. See the module documentation for the rules.
pub fn evaluate(input: &EvaluationInput<'_>) -> Evaluation {
    let target = input.target;
    let mut evaluation = Evaluation {
        bounds: target.bounds,
        fired_action: None,
        change: None,
        not_scaled: Vec::new(),
        observations: input
            .policies
            .iter()
            .map(|input_policy| input_policy.policy.observe(input_policy.metric, input.now))
            .collect(),
    };

    if let Some((action, fired_at)) =
        latest_firing(input.scheduled_actions, input.scheduled_since, input.now)
    {
        if target.suspended.scheduled_scaling_suspended {
            evaluation.not_scaled.push(NotScaledReason {
                source: Some(action.name.clone()),
                code: NotScaledCode::ScheduledScalingSuspended,
                detail: format!(
                    "scheduled action {} was due at {fired_at} but scheduled scaling is suspended",
                    action.name
                ),
            });
        } else {
            evaluation.bounds = action.apply_to(target.bounds);
            evaluation.fired_action = Some(action.name.clone());
        }
    }

    let bounds = evaluation.bounds;
    let current = target.desired;
    let clamped = bounds.clamp(current);
    if clamped != current {
        let (trigger, cause) = match &evaluation.fired_action {
            Some(name) => (
                Trigger::ScheduledAction { name: name.clone() },
                format!(
                    "scheduled action name {name} was triggered: minCapacity {}, maxCapacity {}",
                    bounds.min, bounds.max
                ),
            ),
            None => (
                Trigger::Bounds,
                format!(
                    "the desired count {current} is outside minCapacity {} and maxCapacity {}",
                    bounds.min, bounds.max
                ),
            ),
        };
        evaluation.change = Some(change(current, clamped, trigger, cause));
        return evaluation;
    }

    decide_dynamic(input, bounds, &mut evaluation);
    evaluation
}

struct Proposal<'a> {
    to: u32,
    policy: &'a str,
    cause: String,
}

/// Why a policy's wish is not acted on: a code and its detail.
type Held = (NotScaledCode, String);

/// The target's rules for a policy that wants to scale out: the capacity it gets, or why
/// not.
fn gate_scale_out(
    target: &TargetState,
    bounds: CapacityBounds,
    computation: Computation,
    cooldown: Duration,
    cause: &str,
    now: Timestamp,
) -> Result<u32, Held> {
    let current = target.desired;
    if target.suspended.dynamic_scaling_out_suspended {
        return Err((
            NotScaledCode::DynamicScalingOutSuspended,
            format!("{cause}; dynamic scale-out is suspended"),
        ));
    }
    if current >= bounds.max {
        return Err((
            NotScaledCode::AlreadyAtMaxCapacity,
            format!(
                "{cause}; the desired count {current} is at maxCapacity {}",
                bounds.max
            ),
        ));
    }
    let in_flight = target.activity.scale_out_in_cooldown(cooldown, now);
    let base = in_flight.map_or(current, |record| record.from.min(current));
    let to = computation.capacity(base).min(bounds.max);
    if to > current {
        return Ok(to);
    }
    Err(match in_flight {
        Some(record) => (
            NotScaledCode::ScaleOutCooldown,
            format!(
                "{cause}; in the scale-out cooldown after {} -> {} at {}, it asks for {to}, not more than {current}",
                record.from, record.to, record.at
            ),
        ),
        None => (
            NotScaledCode::AlreadyAtDesiredCapacity,
            format!("{cause}; it asks for {to}, the desired count is {current}"),
        ),
    })
}

/// The target's rules for a policy that wants to scale in: the capacity it asks for, or
/// why not. (Whether the other policies agree is decided after.)
fn gate_scale_in(
    target: &TargetState,
    bounds: CapacityBounds,
    computation: Computation,
    cooldown: Duration,
    cause: &str,
    now: Timestamp,
) -> Result<u32, Held> {
    let current = target.desired;
    if target.suspended.dynamic_scaling_in_suspended {
        return Err((
            NotScaledCode::DynamicScalingInSuspended,
            format!("{cause}; dynamic scale-in is suspended"),
        ));
    }
    if target.deployment_in_progress {
        return Err((
            NotScaledCode::DeploymentInProgress,
            format!("{cause}; a deployment is in progress"),
        ));
    }
    if current <= bounds.min {
        return Err((
            NotScaledCode::AlreadyAtMinCapacity,
            format!(
                "{cause}; the desired count {current} is at minCapacity {}",
                bounds.min
            ),
        ));
    }
    if target.activity.in_scale_in_cooldown(cooldown, now) {
        return Err((
            NotScaledCode::ScaleInCooldown,
            format!(
                "{cause}; in the scale-in cooldown of {} s",
                cooldown.as_secs()
            ),
        ));
    }
    let to = computation.capacity(current).max(bounds.min);
    if to < current {
        return Ok(to);
    }
    Err((
        NotScaledCode::AlreadyAtDesiredCapacity,
        format!("{cause}; it asks for {to}, the desired count is {current}"),
    ))
}

fn decide_dynamic(input: &EvaluationInput<'_>, bounds: CapacityBounds, out: &mut Evaluation) {
    let target = input.target;
    let now = input.now;
    let current = target.desired;
    let mut scale_outs: Vec<Proposal<'_>> = Vec::new();
    let mut scale_ins: Vec<Proposal<'_>> = Vec::new();
    let mut scale_in_holdouts: Vec<&str> = Vec::new();

    for PolicyInput { policy, metric } in input.policies {
        let name = policy.name();
        let assessment = match policy {
            Policy::TargetTracking(rule) => rule.assess(&target.resource_id, metric, now),
            Policy::Step(rule) => rule.assess(current, metric, now),
        };
        let held = match assessment {
            Assessment::Holds { code, detail } => Some((code, detail)),
            Assessment::Wants {
                direction,
                computation,
                cooldown,
                cause,
            } => {
                let gated = match direction {
                    Direction::Out => {
                        gate_scale_out(target, bounds, computation, cooldown, &cause, now)
                    }
                    Direction::In => {
                        gate_scale_in(target, bounds, computation, cooldown, &cause, now)
                    }
                };
                match gated {
                    Ok(to) => {
                        let proposals = match direction {
                            Direction::Out => &mut scale_outs,
                            Direction::In => &mut scale_ins,
                        };
                        proposals.push(Proposal {
                            to,
                            policy: name,
                            cause,
                        });
                        None
                    }
                    Err(held) => Some(held),
                }
            }
        };
        if let Some((code, detail)) = held {
            if policy.votes_on_scale_in() {
                scale_in_holdouts.push(name);
            }
            out.not_scaled.push(NotScaledReason {
                source: Some(name.to_string()),
                code,
                detail,
            });
        }
    }

    if let Some(winner) = largest(scale_outs) {
        for proposal in scale_ins {
            out.not_scaled.push(NotScaledReason {
                source: Some(proposal.policy.to_string()),
                code: NotScaledCode::ScaleInNotAgreed,
                detail: format!("policy {} scales out", winner.policy),
            });
        }
        out.change = Some(policy_change(current, winner));
        return;
    }
    if scale_in_holdouts.is_empty() {
        out.change = largest(scale_ins).map(|winner| policy_change(current, winner));
        return;
    }
    for proposal in scale_ins {
        out.not_scaled.push(NotScaledReason {
            source: Some(proposal.policy.to_string()),
            code: NotScaledCode::ScaleInNotAgreed,
            detail: format!(
                "it asks for {}, but policy {} is not ready to scale in",
                proposal.to,
                scale_in_holdouts.join(", ")
            ),
        });
    }
}

fn policy_change(current: u32, winner: Proposal<'_>) -> CapacityChange {
    change(
        current,
        winner.to,
        Trigger::Policy {
            name: winner.policy.to_string(),
        },
        winner.cause,
    )
}

/// The proposal with the largest capacity; the first of equals.
fn largest(proposals: Vec<Proposal<'_>>) -> Option<Proposal<'_>> {
    proposals
        .into_iter()
        .reduce(|best, next| if next.to > best.to { next } else { best })
}

fn change(from: u32, to: u32, trigger: Trigger, cause: String) -> CapacityChange {
    CapacityChange::new(from, to, trigger, cause)
}
