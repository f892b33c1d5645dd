//! The engine's errors: a rule that cannot be evaluated ([`RuleError`]) and a schedule
//! expression that does not parse ([`ScheduleError`]). Each names the field at fault and
//! what is allowed there; the messages are meant to be shown to the user as they are.

/// A scaling rule or capacity bound that is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("minCapacity: must not exceed maxCapacity ({max}), got {min}")]
    MinAboveMax { min: u32, max: u32 },
    #[error("{field}: must be {allowed}, got {found}")]
    OutOfRange {
        field: String,
        allowed: &'static str,
        found: String,
    },
    #[error("stepAdjustments: at least one step adjustment is needed")]
    NoSteps,
    #[error(
        "stepAdjustments[{index}]: metricIntervalLowerBound ({lower}) must be below metricIntervalUpperBound ({upper})"
    )]
    StepBoundsInverted {
        index: usize,
        lower: f64,
        upper: f64,
    },
    #[error("stepAdjustments[{second}]: its interval overlaps stepAdjustments[{first}]")]
    StepsOverlap { first: usize, second: usize },
    #[error(
        "minAdjustmentMagnitude: only allowed with adjustmentType PercentChangeInCapacity, got {adjustment_type}"
    )]
    MinAdjustmentMagnitudeWithoutPercent { adjustment_type: &'static str },
}

/// A `schedule` (or its `timezone`) that does not parse. Messages start with the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule: must be at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(minutes hours day-of-month month day-of-week year), got {found:?}")]
    UnknownForm { found: String },
    #[error("schedule: at() needs a date and time as yyyy-mm-ddThh:mm:ss, got {found:?}")]
    BadAt { found: String },
    #[error("schedule: rate() needs a positive whole number and a unit (minute, minutes, hour, hours, day, days), got {found:?}")]
    BadRate { found: String },
    #[error("schedule: rate({value} {unit}) must use the unit {expected}")]
    RateUnitNumber {
        value: u64,
        unit: String,
        expected: String,
    },
    #[error("schedule: cron needs 6 fields, found {found} (minutes hours day-of-month month day-of-week year)")]
    CronFieldCount { found: usize },
    #[error("schedule: cron {field} field: {problem}, got {found:?}")]
    CronField {
        field: &'static str,
        problem: String,
        found: String,
    },
    #[error("schedule: cron needs ? in exactly one of day-of-month and day-of-week, got {day_of_month:?} and {day_of_week:?}")]
    CronDayFields {
        day_of_month: String,
        day_of_week: String,
    },
    #[error("timezone: {found:?} is not an IANA time zone name (such as Europe/Paris or UTC)")]
    UnknownTimeZone { found: String },
}

impl ScheduleError {
    /// The scheduled action's field at fault: `timezone` or `schedule`.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::UnknownTimeZone { .. } => "timezone",
            _ => "schedule",
        }
    }

    /// The message without its leading field name, for errors that name the field by
    /// their own path (`scheduledActions[0].schedule: ...`).
    pub fn detail(&self) -> String {
        let full = self.to_string();
        match full
            .strip_prefix(self.field())
            .and_then(|r| r.strip_prefix(": "))
        {
            Some(rest) => rest.to_string(),
            None => full,
        }
    }
}
