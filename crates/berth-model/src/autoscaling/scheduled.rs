//! [`ScheduledAction`]: set a scalable target's minimum and maximum capacity at given
//! times (`at(...)`, `rate(...)` or `cron(...)` in a time zone). Scheduled actions ignore
//! cooldowns.
//!
//! Only the schedule's outer form is checked here; reading the expression and the time
//! zone belongs to the autoscaler.

use serde::{Deserialize, Deserializer, Serialize};

use super::identity::{
    check_capacity, check_resource_name, ScalableDimension, ServiceNamespace, ServiceRef,
};
use crate::error::{Result, ValidationError};
use crate::time::Timestamp;

/// Application Auto Scaling's longest schedule expression.
pub const MAX_SCHEDULE_LEN: usize = 1600;

/// A scheduled action (PutScheduledAction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledAction {
    /// 1 to 256 characters, no `/`, `:` or `|`; unique per service.
    pub scheduled_action_name: String,
    /// Only `ecs`; may be left out.
    #[serde(default)]
    pub service_namespace: ServiceNamespace,
    /// `service/<cluster>/<service>`; the service must have a scalable target.
    pub resource_id: String,
    /// Only `ecs:service:DesiredCount`; may be left out.
    #[serde(default)]
    pub scalable_dimension: ScalableDimension,
    /// `at(yyyy-mm-ddThh:mm:ss)`, `rate(<value> <unit>)` or
    /// `cron(<minutes> <hours> <day of month> <month> <day of week> <year>)`.
    pub schedule: String,
    /// An IANA time zone such as `Europe/Paris` for `at` and `cron`; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The action runs from this time on: seconds since the epoch, or an RFC 3339 time
    /// in a stack file (`2026-12-01T08:00:00Z`).
    #[serde(
        default,
        deserialize_with = "time_or_rfc3339",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<Timestamp>,
    /// The action no longer runs after this time; same forms as `startTime`.
    #[serde(
        default,
        deserialize_with = "time_or_rfc3339",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<Timestamp>,
    pub scalable_target_action: ScalableTargetAction,
    // ---- filled in by berth ----
    #[serde(
        default,
        rename = "scheduledActionARN",
        skip_serializing_if = "String::is_empty"
    )]
    pub scheduled_action_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Timestamp>,
}

/// The capacity bounds a scheduled action sets; at least one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalableTargetAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<i64>,
}

impl ScheduledAction {
    /// Checks the resource on its own; returns the service it names.
    pub fn validate(&self) -> Result<ServiceRef> {
        check_resource_name("scheduledActionName", &self.scheduled_action_name)?;
        let svc = ServiceRef::parse("resourceId", &self.resource_id)?;
        let s = self.schedule.trim();
        let form_ok = ["at(", "rate(", "cron("]
            .iter()
            .any(|p| s.starts_with(p) && s.ends_with(')') && s.len() > p.len() + 1);
        if !form_ok || self.schedule.len() > MAX_SCHEDULE_LEN {
            return Err(ValidationError::new(
                "schedule",
                format!(
                    "must be at(yyyy-mm-ddThh:mm:ss), rate(<value> <unit>) or cron(<6 fields>), at most {MAX_SCHEDULE_LEN} characters, got {:?}",
                    self.schedule
                ),
            ));
        }
        if let Some(tz) = &self.timezone {
            let ok = !tz.is_empty()
                && tz.len() <= 40
                && tz
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-'));
            if !ok {
                return Err(ValidationError::new(
                    "timezone",
                    format!(
                        "must be an IANA time zone name such as Europe/Paris or UTC, got {tz:?}"
                    ),
                ));
            }
        }
        if let (Some(a), Some(b)) = (self.start_time, self.end_time) {
            if b <= a {
                return Err(ValidationError::new(
                    "endTime",
                    format!("must be after startTime ({a}), got {b}"),
                ));
            }
        }
        let act = &self.scalable_target_action;
        if act.min_capacity.is_none() && act.max_capacity.is_none() {
            return Err(ValidationError::new(
                "scalableTargetAction",
                "give minCapacity, maxCapacity or both",
            ));
        }
        if let Some(m) = act.min_capacity {
            check_capacity("scalableTargetAction.minCapacity", m)?;
        }
        if let Some(m) = act.max_capacity {
            check_capacity("scalableTargetAction.maxCapacity", m)?;
        }
        if let (Some(lo), Some(hi)) = (act.min_capacity, act.max_capacity) {
            if lo > hi {
                return Err(ValidationError::new(
                    "scalableTargetAction.minCapacity",
                    format!("must not exceed maxCapacity ({hi}), got {lo}"),
                ));
            }
        }
        Ok(svc)
    }

    /// The user-written part, for comparing a stack file's action with the stored one.
    pub fn spec(&self) -> ScheduledAction {
        ScheduledAction {
            scheduled_action_arn: String::new(),
            creation_time: None,
            ..self.clone()
        }
    }
}

/// Reads a timestamp given as seconds since the epoch or as RFC 3339 text.
fn time_or_rfc3339<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Timestamp>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Seconds(f64),
        Text(String),
    }
    match Option::<Given>::deserialize(d)? {
        None => Ok(None),
        Some(Given::Seconds(s)) => Ok(Some(s)),
        Some(Given::Text(t)) => parse_rfc3339(&t).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "must be seconds since the epoch or an RFC 3339 time such as 2026-12-01T08:00:00Z, got {t:?}"
            ))
        }),
    }
}

/// Parses `yyyy-mm-ddThh:mm:ss[.frac](Z|±hh:mm)` into seconds since the epoch.
pub fn parse_rfc3339(t: &str) -> Option<Timestamp> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..n]).parse().ok()?;
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset) as f64 + frac)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
