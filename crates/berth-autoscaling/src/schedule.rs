//! A scheduled action's `schedule` with its `timezone`: `at(yyyy-mm-ddThh:mm:ss)`,
//! `rate(value unit)` or `cron(minutes hours day-of-month month day-of-week year)`
//! ([`crate::cron`]), and the next firing after an instant.
//!
//! Wall-clock times (`at`, `cron`) are read in the IANA `timezone` (UTC when none is
//! given, as in AWS), from the tz database bundled with jiff, so every machine computes
//! the same instants. `rate` counts from an anchor the caller gives (the action's
//! `startTime`, or its creation) in whole minutes, hours or days of elapsed time; the unit
//! is singular for 1 and plural otherwise, as AWS requires.

use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::Timestamp;

use crate::cron::CronExpression;
use crate::error::ScheduleError;

/// A parsed, valid schedule expression with its time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    expression: String,
    time_zone_name: String,
    time_zone: TimeZone,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    At(Timestamp),
    Rate(Duration),
    Cron(Box<CronExpression>),
}

impl Schedule {
    /// Parses `expression` in `timezone` (an IANA name; `None` is UTC). This is what
    /// validates a stack file's `schedule` and `timezone`.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let time_zone_name = timezone.unwrap_or("UTC");
        let time_zone = TimeZoneDatabase::bundled()
            .get(time_zone_name)
            .map_err(|_| ScheduleError::UnknownTimeZone {
                found: time_zone_name.to_string(),
            })?;
        let trimmed = expression.trim();
        let kind = if let Some(inner) = inside(trimmed, "at(") {
            Kind::At(parse_at(inner, &time_zone)?)
        } else if let Some(inner) = inside(trimmed, "rate(") {
            Kind::Rate(parse_rate(inner)?)
        } else if let Some(inner) = inside(trimmed, "cron(") {
            Kind::Cron(Box::new(CronExpression::parse(inner)?))
        } else {
            return Err(ScheduleError::UnknownForm {
                found: expression.to_string(),
            });
        };
        Ok(Schedule {
            expression: trimmed.to_string(),
            time_zone_name: time_zone_name.to_string(),
            time_zone,
            kind,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// The first firing strictly after `after`. `rate_anchor` is a `rate` schedule's first
    /// firing (it then fires every period after it); other forms ignore it. `None` when
    /// the schedule fires no more.
    pub fn next_after(&self, after: Timestamp, rate_anchor: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::At(instant) => (*instant > after).then_some(*instant),
            Kind::Rate(period) => {
                if rate_anchor > after {
                    return Some(rate_anchor);
                }
                let elapsed = after.duration_since(rate_anchor).as_nanos() as u128;
                let period_nanos = period.as_nanos();
                let periods = elapsed / period_nanos + 1;
                let offset = Duration::from_nanos(u64::try_from(periods * period_nanos).ok()?);
                rate_anchor.checked_add(offset).ok()
            }
            Kind::Cron(cron) => cron.next_after(after, &self.time_zone),
        }
    }

    /// A `rate` schedule's period.
    pub fn rate(&self) -> Option<Duration> {
        match self.kind {
            Kind::Rate(period) => Some(period),
            _ => None,
        }
    }
}

fn inside<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)?.strip_suffix(')')
}

fn parse_at(text: &str, time_zone: &TimeZone) -> Result<Timestamp, ScheduleError> {
    let bad = || ScheduleError::BadAt {
        found: text.to_string(),
    };
    // Exactly yyyy-mm-ddThh:mm:ss, nothing jiff would also accept (offsets, fractions).
    let shape_ok = text.len() == 19
        && text.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            10 => byte == b'T',
            13 | 16 => byte == b':',
            _ => byte.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let wall: DateTime = text.parse().map_err(|_| bad())?;
    time_zone
        .to_ambiguous_timestamp(wall)
        .compatible()
        .map_err(|_| bad())
}

fn parse_rate(text: &str) -> Result<Duration, ScheduleError> {
    let bad = || ScheduleError::BadRate {
        found: text.to_string(),
    };
    let mut parts = text.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let value: u64 = value
        .parse()
        .ok()
        .filter(|value| *value > 0)
        .ok_or_else(bad)?;
    let (seconds, singular) = match unit {
        "minute" | "minutes" => (60, "minute"),
        "hour" | "hours" => (3600, "hour"),
        "day" | "days" => (86_400, "day"),
        _ => return Err(bad()),
    };
    let expected = if value == 1 {
        singular.to_string()
    } else {
        format!("{singular}s")
    };
    if unit != expected {
        return Err(ScheduleError::RateUnitNumber {
            value,
            unit: unit.to_string(),
            expected,
        });
    }
    value
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}
