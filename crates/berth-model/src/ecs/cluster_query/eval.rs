//! Evaluating a parsed cluster query against one container instance, as the parent
//! module's table says each subject and operator behaves.
//!
//! It does not gather what it evaluates: the caller fills the [`InstanceView`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{Argument, Comparison, Expression, Operator, Subject, TimeSpan};
use crate::time::Timestamp;

/// What a container instance is and runs, as an expression sees it.
#[derive(Debug, Clone)]
pub struct InstanceView<'a> {
    /// The container instance id (the last part of its ARN).
    pub instance_id: &'a str,
    pub ec2_instance_id: &'a str,
    pub attributes: &'a BTreeMap<String, String>,
    pub registered_at: Timestamp,
    /// Tasks RUNNING on the instance.
    pub running_tasks_count: u32,
    /// The group of each task on the instance that is not stopped (repeats allowed).
    pub task_groups: Vec<&'a str>,
    pub agent_connected: bool,
}

impl Expression {
    /// Whether the expression holds for the instance `view` describes.
    pub fn holds_for(&self, view: &InstanceView<'_>) -> bool {
        match self {
            Expression::And(a, b) => a.holds_for(view) && b.holds_for(view),
            Expression::Or(a, b) => a.holds_for(view) || b.holds_for(view),
            Expression::Not(a) => !a.holds_for(view),
            Expression::Compare(c) => c.holds_for(view),
        }
    }
}

impl Comparison {
    fn holds_for(&self, view: &InstanceView<'_>) -> bool {
        let (op, arg) = (self.operator, &self.argument);
        match &self.subject {
            Subject::Attribute(name) => {
                one_value(op, arg, view.attributes.get(name).map(|v| v.as_str()))
            }
            Subject::InstanceId => one_value(op, arg, Some(view.instance_id)),
            Subject::Ec2InstanceId => one_value(op, arg, Some(view.ec2_instance_id)),
            Subject::AgentConnected => one_value(
                op,
                arg,
                Some(if view.agent_connected {
                    "true"
                } else {
                    "false"
                }),
            ),
            Subject::TaskGroup => many_values(op, arg, &view.task_groups),
            Subject::RegisteredAt => match arg {
                Argument::Time(span) => in_time(op, *span, view.registered_at),
                _ => false,
            },
            Subject::RunningTasksCount => match arg {
                Argument::Count(n) => ordered(op, u64::from(view.running_tasks_count).cmp(n)),
                _ => false,
            },
        }
    }
}

/// A subject with at most one value: absent, only `!exists` holds.
fn one_value(op: Operator, arg: &Argument, value: Option<&str>) -> bool {
    match (op, value) {
        (Operator::Exists, v) => v.is_some(),
        (Operator::NotExists, v) => v.is_none(),
        (_, None) => false,
        (_, Some(v)) => compare(op, arg, v),
    }
}

/// A subject with any number of values: the positive operators hold when one value
/// matches, the negative ones when none does.
fn many_values(op: Operator, arg: &Argument, values: &[&str]) -> bool {
    let any = |op| values.iter().any(|v| compare(op, arg, v));
    match op {
        Operator::Exists => !values.is_empty(),
        Operator::NotExists => values.is_empty(),
        Operator::NotEquals => !any(Operator::Equals),
        Operator::NotIn => !any(Operator::In),
        Operator::NotMatches => !any(Operator::Matches),
        op => any(op),
    }
}

/// `value op arg` for a value that is there.
fn compare(op: Operator, arg: &Argument, value: &str) -> bool {
    match (op, arg) {
        (Operator::Equals, Argument::Value(a)) => wildcard_match(a, value),
        (Operator::NotEquals, Argument::Value(a)) => !wildcard_match(a, value),
        (Operator::In, Argument::List(l)) => l.iter().any(|a| wildcard_match(a, value)),
        (Operator::NotIn, Argument::List(l)) => !l.iter().any(|a| wildcard_match(a, value)),
        (Operator::Matches, Argument::Pattern(p)) => p.is_match(value),
        (Operator::NotMatches, Argument::Pattern(p)) => !p.is_match(value),
        (
            Operator::GreaterThan
            | Operator::GreaterThanEqual
            | Operator::LessThan
            | Operator::LessThanEqual,
            Argument::Value(a),
        ) => ordered(op, order(value, a)),
        _ => false,
    }
}

/// Whether `ordering` (of the value against the argument) satisfies `op`.
fn ordered(op: Operator, ordering: Ordering) -> bool {
    match op {
        Operator::Equals => ordering == Ordering::Equal,
        Operator::NotEquals => ordering != Ordering::Equal,
        Operator::GreaterThan => ordering == Ordering::Greater,
        Operator::GreaterThanEqual => ordering != Ordering::Less,
        Operator::LessThan => ordering == Ordering::Less,
        Operator::LessThanEqual => ordering != Ordering::Greater,
        _ => false,
    }
}

/// `t op span`, the span standing for a day or a second.
fn in_time(op: Operator, span: TimeSpan, t: Timestamp) -> bool {
    match op {
        Operator::Equals => span.start <= t && t < span.end,
        Operator::NotEquals => !(span.start <= t && t < span.end),
        Operator::GreaterThan => t >= span.end,
        Operator::GreaterThanEqual => t >= span.start,
        Operator::LessThan => t < span.start,
        Operator::LessThanEqual => t < span.end,
        _ => false,
    }
}

/// Orders `a` against `b`: dotted runs of digits part by part, numbers as numbers,
/// anything else byte by byte.
pub(super) fn order(a: &str, b: &str) -> Ordering {
    fn dotted(s: &str) -> Option<Vec<u64>> {
        s.split('.')
            .map(|p| {
                if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
                    p.parse().ok()
                } else {
                    None
                }
            })
            .collect()
    }
    if let (Some(x), Some(y)) = (dotted(a), dotted(b)) {
        return x.cmp(&y);
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

/// Whether `value` matches `pattern`, where each `*` stands for any run of characters.
pub(super) fn wildcard_match(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
