//! The cluster query language's parser: text to [`Expression`], by recursive descent
//! over the characters (the grammar is in the parent module). Every error carries the
//! byte offset where the parser stood.
//!
//! It does not evaluate anything, and it reads a regular expression's text only to
//! compile it.

use super::{Argument, Comparison, Expression, Operator, ParseError, Pattern, Subject, TimeSpan};

const SUBJECTS: &str = "attribute:<name>, instanceId, ec2InstanceId, registeredAt, \
                        runningTasksCount, task:group or agentConnected";

/// Characters that end a word (besides white space).
const DELIMITERS: &[char] = &[
    '(', ')', '[', ']', ',', '=', '!', '<', '>', '&', '|', '\'', '"',
];

/// Parses a cluster query expression.
pub fn parse(text: &str) -> Result<Expression, ParseError> {
    let mut p = Parser { text, pos: 0 };
    let e = p.or()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error(format!("expected and, or or the end, found {}", p.found())));
    }
    Ok(e)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The word at the current position (possibly empty).
    fn word(&self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || DELIMITERS.contains(&c))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// What stands at the current position, for an error message.
    fn found(&self) -> String {
        match (self.word(), self.rest().chars().next()) {
            (_, None) => "the end".to_string(),
            ("", Some(c)) => format!("{:?}", c.to_string()),
            (w, _) => format!("{w:?}"),
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, position: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            position,
            message: message.into(),
        }
    }

    /// Consumes `token` (after white space) when it is next; a word only when whole.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let is_word = token.chars().all(|c| c.is_ascii_alphabetic());
        let next = if is_word {
            self.word() == token
        } else {
            self.rest().starts_with(token)
        };
        if next {
            self.pos += token.len();
        }
        next
    }

    fn or(&mut self) -> Result<Expression, ParseError> {
        let mut left = self.and()?;
        while self.eat("or") || self.eat("||") {
            let right = self.and()?;
            left = Expression::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expression, ParseError> {
        let mut left = self.unary()?;
        while self.eat("and") || self.eat("&&") {
            let right = self.unary()?;
            left = Expression::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expression, ParseError> {
        if self.eat("not") || self.eat("!") {
            return Ok(Expression::Not(Box::new(self.unary()?)));
        }
        self.skip_ws();
        let open = self.pos;
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error(format!(
                    "expected \")\" to close the \"(\" at {open}, found {}",
                    self.found()
                )));
            }
            return Ok(inner);
        }
        self.comparison().map(Expression::Compare)
    }

    fn comparison(&mut self) -> Result<Comparison, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let word = self.word();
        let subject = match word {
            "" => {
                return Err(self.error(format!(
                    "expected a subject ({SUBJECTS}), found {}",
                    self.found()
                )))
            }
            "instanceId" => Subject::InstanceId,
            "ec2InstanceId" => Subject::Ec2InstanceId,
            "registeredAt" => Subject::RegisteredAt,
            "runningTasksCount" => Subject::RunningTasksCount,
            "task:group" => Subject::TaskGroup,
            "agentConnected" => Subject::AgentConnected,
            w => match w.strip_prefix("attribute:") {
                Some(name) => Subject::Attribute(self.attribute_name(start, name)?.to_string()),
                None => {
                    return Err(self.error(format!("unknown subject {w:?}: expected {SUBJECTS}")))
                }
            },
        };
        self.pos += word.len();
        let (operator, op_at, op_text) = self.operator(word)?;
        if !takes(&subject, operator) {
            return Err(self.error_at(
                op_at,
                format!("{subject} takes {}, found {op_text:?}", allowed(&subject)),
            ));
        }
        let argument = match operator {
            Operator::Exists | Operator::NotExists => Argument::None,
            Operator::In | Operator::NotIn => Argument::List(self.list(op_text)?),
            Operator::Matches | Operator::NotMatches => Argument::Pattern(self.pattern(op_text)?),
            _ => {
                let at = self.pos_after_ws();
                let value = self.value(op_text)?;
                typed(&subject, value, at)?
            }
        };
        Ok(Comparison {
            subject,
            operator,
            argument,
        })
    }

    fn pos_after_ws(&mut self) -> usize {
        self.skip_ws();
        self.pos
    }

    /// Checks `name`, the part of the word at `start` after `attribute:`.
    fn attribute_name(&self, start: usize, name: &'a str) -> Result<&'a str, ParseError> {
        let name_at = start + "attribute:".len();
        if name.is_empty() {
            return Err(self.error_at(name_at, "expected an attribute name after \"attribute:\""));
        }
        if let Some((i, c)) = name.char_indices().find(|(_, c)| {
            !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '\\'))
        }) {
            return Err(self.error_at(
                name_at + i,
                format!(
                    "an attribute name may contain letters, digits, hyphens, underscores, \
                     periods, slashes and backslashes, found {c:?}"
                ),
            ));
        }
        Ok(name)
    }

    /// The operator after the subject written `after`: it, where it was, and its text.
    fn operator(&mut self, after: &str) -> Result<(Operator, usize, &'a str), ParseError> {
        self.skip_ws();
        let at = self.pos;
        let rest = self.rest();
        const SYMBOLS: &[(&str, Operator)] = &[
            ("==", Operator::Equals),
            ("!=", Operator::NotEquals),
            (">=", Operator::GreaterThanEqual),
            ("<=", Operator::LessThanEqual),
            ("=~", Operator::Matches),
            ("!~", Operator::NotMatches),
            (">", Operator::GreaterThan),
            ("<", Operator::LessThan),
        ];
        let found = SYMBOLS
            .iter()
            .find(|(s, _)| rest.starts_with(s))
            .map(|&(s, op)| (s.len(), op));
        let found = found.or_else(|| {
            let bang = rest.strip_prefix('!').is_some();
            let word_at = if bang { self.pos + 1 } else { self.pos };
            let word = {
                let r = &self.text[word_at..];
                let end = r
                    .find(|c: char| c.is_whitespace() || DELIMITERS.contains(&c))
                    .unwrap_or(r.len());
                &r[..end]
            };
            let op = match (bang, word) {
                (true, "exists") => Operator::NotExists,
                (true, "in") => Operator::NotIn,
                (true, _) => return None,
                (false, "equals") => Operator::Equals,
                (false, "not_equals") => Operator::NotEquals,
                (false, "greater_than") => Operator::GreaterThan,
                (false, "greater_than_equal") => Operator::GreaterThanEqual,
                (false, "less_than") => Operator::LessThan,
                (false, "less_than_equal") => Operator::LessThanEqual,
                (false, "exists") => Operator::Exists,
                (false, "not_exists") => Operator::NotExists,
                (false, "in") => Operator::In,
                (false, "not_in") => Operator::NotIn,
                (false, "matches") => Operator::Matches,
                (false, "not_matches") => Operator::NotMatches,
                _ => return None,
            };
            Some((word.len() + usize::from(bang), op))
        });
        match found {
            Some((len, op)) => {
                self.pos += len;
                Ok((op, at, &self.text[at..at + len]))
            }
            None => Err(self.error(format!(
                "expected an operator after {after:?}, found {}",
                self.found()
            ))),
        }
    }

    /// A quoted string or a word.
    fn value(&mut self, after: &str) -> Result<String, ParseError> {
        self.skip_ws();
        if let Some(quoted) = self.quoted()? {
            return Ok(quoted);
        }
        let word = self.word();
        if word.is_empty() {
            return Err(self.error(format!(
                "expected a value after {after:?}, found {}",
                self.found()
            )));
        }
        self.pos += word.len();
        Ok(word.to_string())
    }

    /// The string in quotes at the current position, if one opens here.
    fn quoted(&mut self) -> Result<Option<String>, ParseError> {
        let Some(q) = self
            .rest()
            .chars()
            .next()
            .filter(|c| matches!(c, '\'' | '"'))
        else {
            return Ok(None);
        };
        let inner = &self.rest()[1..];
        match inner.find(q) {
            Some(end) => {
                let s = inner[..end].to_string();
                self.pos += end + 2;
                Ok(Some(s))
            }
            None => Err(self.error(format!("the {q} opened here is not closed"))),
        }
    }

    /// `[a, b, ...]` after `in` or `!in`.
    fn list(&mut self, after: &str) -> Result<Vec<String>, ParseError> {
        self.skip_ws();
        let open = self.pos;
        if !self.eat("[") {
            return Err(self.error(format!(
                "expected a list such as [a, b] after {after:?}, found {}",
                self.found()
            )));
        }
        let mut items = Vec::new();
        loop {
            items.push(self.value(if items.is_empty() { "[" } else { "," })?);
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(items);
            }
            return Err(self.error(format!(
                "expected \",\" or \"]\" in the list opened at {open}, found {}",
                self.found()
            )));
        }
    }

    /// A regular expression after `=~` or `!~`: quoted, or up to white space or a `)`
    /// that closes nothing opened inside it.
    fn pattern(&mut self, after: &str) -> Result<Pattern, ParseError> {
        self.skip_ws();
        let at = self.pos;
        let source = match self.quoted()? {
            Some(q) => q,
            None => {
                let rest = self.rest();
                let mut depth = 0usize;
                let mut end = rest.len();
                for (i, c) in rest.char_indices() {
                    match c {
                        c if c.is_whitespace() => {
                            end = i;
                            break;
                        }
                        '(' | '[' | '{' => depth += 1,
                        ')' if depth == 0 => {
                            end = i;
                            break;
                        }
                        ')' | ']' | '}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
                if end == 0 {
                    return Err(self.error(format!(
                        "expected a regular expression after {after:?}, found {}",
                        self.found()
                    )));
                }
                self.pos += end;
                rest[..end].to_string()
            }
        };
        Pattern::new(&source).map_err(|e| {
            self.error_at(
                at,
                format!("not a valid regular expression: {}", regex_reason(&e)),
            )
        })
    }
}

/// The reason line of a regex error (its other lines show berth's anchored pattern).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or("invalid"))
        .to_string()
}

/// Whether `subject` takes `op`.
fn takes(subject: &Subject, op: Operator) -> bool {
    use Operator::*;
    match subject {
        Subject::Attribute(_) => true,
        Subject::InstanceId | Subject::Ec2InstanceId | Subject::AgentConnected => {
            matches!(op, Equals | NotEquals | In | NotIn | Matches | NotMatches)
        }
        Subject::RegisteredAt | Subject::RunningTasksCount => matches!(
            op,
            Equals | NotEquals | GreaterThan | GreaterThanEqual | LessThan | LessThanEqual
        ),
        Subject::TaskGroup => !matches!(
            op,
            GreaterThan | GreaterThanEqual | LessThan | LessThanEqual
        ),
    }
}

/// The operators `subject` takes, for an error message.
fn allowed(subject: &Subject) -> &'static str {
    match subject {
        Subject::Attribute(_) => "every operator",
        Subject::InstanceId | Subject::Ec2InstanceId | Subject::AgentConnected => {
            "==, !=, in, !in, =~ or !~"
        }
        Subject::RegisteredAt | Subject::RunningTasksCount => "==, !=, >, >=, < or <=",
        Subject::TaskGroup => "==, !=, in, !in, =~, !~, exists or !exists",
    }
}

/// The argument `value` (found at `at`) as `subject` compares with it.
fn typed(subject: &Subject, value: String, at: usize) -> Result<Argument, ParseError> {
    let error = |message: String| ParseError {
        position: at,
        message,
    };
    match subject {
        Subject::RunningTasksCount => value.parse::<u64>().map(Argument::Count).map_err(|_| {
            error(format!(
                "runningTasksCount compares with a whole number, found {value:?}"
            ))
        }),
        Subject::RegisteredAt => time_span(&value).map(Argument::Time).ok_or_else(|| {
            error(format!(
                "registeredAt compares with a date such as 2018-06-18 or \
                 2018-06-18T22:28:28Z, found {value:?}"
            ))
        }),
        _ => Ok(Argument::Value(value)),
    }
}

/// `YYYY-MM-DD` (the whole day, UTC) or `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]` (the
/// whole second; UTC without an offset).
pub(super) fn time_span(s: &str) -> Option<TimeSpan> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let day = day_number(date)? as f64 * 86_400.0;
    let Some(time) = time else {
        return Some(TimeSpan {
            start: day,
            end: day + 86_400.0,
        });
    };
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, ""),
    };
    let clock = clock.split_once('.').map_or(clock, |(whole, fraction)| {
        if fraction.chars().all(|c| c.is_ascii_digit()) && !fraction.is_empty() {
            whole
        } else {
            "invalid"
        }
    });
    let seconds = hh_mm(clock.get(..5)?, 23)? * 60
        + match clock.get(5..)? {
            s if s.len() == 3 && s.starts_with(':') => two_digits(&s[1..], 59)?,
            _ => return None,
        };
    let offset = match offset {
        "" | "Z" => 0,
        o if o.len() == 6 => {
            let magnitude = hh_mm(&o[1..], 23)? * 60;
            if o.starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };
    let start = day + (seconds - offset) as f64;
    Some(TimeSpan {
        start,
        end: start + 1.0,
    })
}

/// `HH:MM` as minutes, hours at most `max_hours`.
fn hh_mm(s: &str, max_hours: i64) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    Some(two_digits(h, max_hours)? * 60 + two_digits(m, 59)?)
}

fn two_digits(s: &str, max: i64) -> Option<i64> {
    if s.len() != 2 || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| *v <= max)
}

/// Days from 1970-01-01 to `YYYY-MM-DD` (proleptic Gregorian calendar).
fn day_number(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}
