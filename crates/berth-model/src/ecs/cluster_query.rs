//! ECS's cluster query language, the expressions of `memberOf` placement constraints:
//! a parser into an [`Expression`] whose every error names the byte offset it was found
//! at, and an evaluator against an [`InstanceView`] (what a container instance is and
//! runs at the moment of a placement).
//!
//! What it does not do: choose instances or read the store; the scheduler builds the
//! views and decides what a constraint that does not hold means.
//!
//! # Grammar
//!
//! ```text
//! expression := or
//! or         := and (("or" | "||") and)*
//! and        := unary (("and" | "&&") unary)*
//! unary      := ("not" | "!") unary | "(" or ")" | comparison
//! comparison := subject operator [argument]
//! subject    := "attribute:" NAME | "instanceId" | "ec2InstanceId" | "registeredAt"
//!             | "runningTasksCount" | "task:group" | "agentConnected"
//! operator   := "==" | "equals" | "!=" | "not_equals"
//!             | ">" | "greater_than" | ">=" | "greater_than_equal"
//!             | "<" | "less_than" | "<=" | "less_than_equal"
//!             | "exists" | "!exists" | "not_exists"
//!             | "in" | "!in" | "not_in"
//!             | "=~" | "matches" | "!~" | "not_matches"
//! argument   := VALUE                       (after ==, !=, >, >=, <, <=)
//!             | "[" VALUE ("," VALUE)* "]"  (after in, not_in)
//!             | PATTERN                     (after =~, !~)
//!             | nothing                     (after exists, not_exists)
//! ```
//!
//! `not` binds tighter than `and`, which binds tighter than `or`. Words and symbols may
//! touch (`attribute:zone==a`, `not(task:group == db)`). A VALUE is a run of characters
//! up to a space or one of `( ) [ ] , = ! < > & | ' "`, or a string in single or double
//! quotes (no escapes). A PATTERN is a quoted string or a run of characters up to a
//! space or a `)` that closes nothing opened inside it; it is a regular expression
//! (the `regex` crate's syntax, close to Java's for what placement needs) that must
//! match the whole value. A `*` in a VALUE matches any run of characters (`t2.*`).
//!
//! What each subject is, and which operators it takes:
//!
//! | subject | the instance's | operators |
//! |---|---|---|
//! | `attribute:NAME` | attribute NAME; absent: only `!exists` holds | all |
//! | `instanceId` | container instance id (last part of its ARN) | `==` `!=` `in` `!in` `=~` `!~` |
//! | `ec2InstanceId` | `ec2InstanceId` (in berth the same id) | as `instanceId` |
//! | `registeredAt` | registration time; argument a date (below) | `==` `!=` `>` `>=` `<` `<=` |
//! | `runningTasksCount` | tasks RUNNING on it; argument an integer | `==` `!=` `>` `>=` `<` `<=` |
//! | `task:group` | groups of the tasks on it (`service:web`, ...) | `==` `!=` `in` `!in` `=~` `!~` `exists` `!exists` |
//! | `agentConnected` | `true` or `false` | `==` `!=` `in` `!in` `=~` `!~` |
//!
//! `task:group` has a value per task: `==`, `in` and `=~` hold when one of them matches,
//! and `!=`, `!in` and `!~` when none does (so `task:group != database` holds on an
//! instance that runs no task at all); `exists` holds when the instance runs a task.
//! An absent attribute satisfies no comparison (`attribute:stack != prod` selects
//! instances that have a `stack` other than `prod`, as ECS's example says); write
//! `not(attribute:stack == prod)` to include those without one.
//!
//! Ordering (`>` ...) compares two dotted runs of digits (`3`, `1.14.5`) part by part as
//! numbers, two numbers as numbers, anything else byte by byte. `registeredAt` takes
//! `2018-06-18`, `2018-06-18T22:28:28`, `2018-06-18T22:28:28Z` or
//! `2018-06-18T22:28:28+00:00` (UTC unless an offset is given); a date alone stands for
//! its whole day, a time for its whole second: `registeredAt == 2018-06-18` holds for
//! an instance registered at any time that day, `registeredAt < 2018-06-18` before it.
//!
//! Left out of ECS's subjects: `agentVersion` (berth's agent is part of the server).

mod eval;
mod parser;

use std::fmt;

use crate::error::ValidationError;
use crate::time::Timestamp;

pub use eval::InstanceView;
pub use parser::parse;

/// ECS's limit on an expression's length.
pub const MAX_EXPRESSION_LEN: usize = 2000;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    And(Box<Expression>, Box<Expression>),
    Or(Box<Expression>, Box<Expression>),
    Not(Box<Expression>),
    Compare(Comparison),
}

/// `subject operator [argument]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub subject: Subject,
    pub operator: Operator,
    pub argument: Argument,
}

/// What a comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `attribute:NAME`.
    Attribute(String),
    InstanceId,
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
    AgentConnected,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Attribute(name) => write!(f, "attribute:{name}"),
            Subject::InstanceId => f.write_str("instanceId"),
            Subject::Ec2InstanceId => f.write_str("ec2InstanceId"),
            Subject::RegisteredAt => f.write_str("registeredAt"),
            Subject::RunningTasksCount => f.write_str("runningTasksCount"),
            Subject::TaskGroup => f.write_str("task:group"),
            Subject::AgentConnected => f.write_str("agentConnected"),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    NotEquals,
    GreaterThan,
    GreaterThanEqual,
    LessThan,
    LessThanEqual,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

impl Operator {
    /// The symbol ECS writes first for it.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Equals => "==",
            Operator::NotEquals => "!=",
            Operator::GreaterThan => ">",
            Operator::GreaterThanEqual => ">=",
            Operator::LessThan => "<",
            Operator::LessThanEqual => "<=",
            Operator::Exists => "exists",
            Operator::NotExists => "!exists",
            Operator::In => "in",
            Operator::NotIn => "!in",
            Operator::Matches => "=~",
            Operator::NotMatches => "!~",
        }
    }
}

/// What an operator compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Argument {
    /// `exists`, `!exists`.
    None,
    /// A value; `*` matches any run of characters.
    Value(String),
    /// `in`, `!in`.
    List(Vec<String>),
    /// `=~`, `!~`.
    Pattern(Pattern),
    /// `registeredAt`'s argument: the instants it stands for.
    Time(TimeSpan),
    /// `runningTasksCount`'s argument.
    Count(u64),
}

/// A regular expression that must match a whole value; equal when written the same.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, anchored at both ends. `source` must be a regular expression
    /// on its own (so that `a)|(b` cannot escape the anchors).
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(source)?;
        let regex = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The instants `[start, end)` a date (a whole day) or a time (a whole second) stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSpan {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Where and why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the expression, 0 for its first character.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

impl std::str::FromStr for Expression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The expression of a `memberOf` constraint at `field` (such as
/// `placementConstraints[0].expression`), parsed; a missing, too long or unparsable one
/// is a [`ValidationError`] at `field`.
pub fn check_member_of(field: &str, expression: Option<&str>) -> crate::error::Result<Expression> {
    let Some(text) = expression else {
        return Err(ValidationError::new(
            field,
            "memberOf needs a cluster query expression, such as \"attribute:zone == a\"",
        ));
    };
    if text.len() > MAX_EXPRESSION_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_EXPRESSION_LEN} characters long, got {}",
                text.len()
            ),
        ));
    }
    parse(text).map_err(|e| ValidationError::new(field, e.to_string()))
}

#[cfg(test)]
mod tests;
