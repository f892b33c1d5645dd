//! Application Auto Scaling's six-field cron (the EventBridge syntax):
//! `minutes hours day-of-month month day-of-week year`.
//!
//! | field | values | wildcards |
//! |---|---|---|
//! | minutes | 0-59 | `, - * /` |
//! | hours | 0-23 | `, - * /` |
//! | day-of-month | 1-31 | `, - * ? / L W` |
//! | month | 1-12 or JAN-DEC | `, - * /` |
//! | day-of-week | 1-7 or SUN-SAT (1 is Sunday) | `, - * ? L #` |
//! | year | 1970-2199 | `, - * /` |
//!
//! Exactly one of day-of-month and day-of-week is `?`. `L` alone is the month's last day
//! (day-of-month) or Saturday (day-of-week); `LW` the month's last weekday; `15W` the
//! weekday nearest the 15th within the month; `6L` (or `FRIL`) the month's last Friday;
//! `6#3` its third Friday. `L`, `W` and `#` stand alone in their field (no lists).
//!
//! Firing times are wall-clock times in the schedule's time zone. On a day whose clock
//! skips forward, a time in the skipped hour fires when the clock has moved past it (the
//! same distance after the change, jiff's "compatible" rule); on a day whose clock falls
//! back, a repeated time fires once, at its first occurrence.

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use crate::error::ScheduleError;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: i16 = 1970;
const LAST_YEAR: i16 = 2199;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpression {
    minutes: ValueSet,
    hours: ValueSet,
    day_of_month: DayOfMonth,
    months: ValueSet,
    day_of_week: DayOfWeek,
    years: ValueSet,
}

/// The values a plain field matches, indexed from the field's minimum.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ValueSet {
    min: u32,
    matches: Vec<bool>,
}

impl ValueSet {
    fn contains(&self, value: u32) -> bool {
        value
            .checked_sub(self.min)
            .and_then(|index| self.matches.get(index as usize))
            .copied()
            .unwrap_or(false)
    }

    fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.matches
            .iter()
            .enumerate()
            .filter(|(_, matches)| **matches)
            .map(|(index, _)| self.min + index as u32)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// `?`: the day-of-week field decides.
    Any,
    Days(ValueSet),
    /// `L`
    Last,
    /// `LW`
    LastWeekday,
    /// `nW`
    NearestWeekday(i8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// `?`: the day-of-month field decides.
    Any,
    /// Sunday = 1.
    Days(ValueSet),
    /// `nL`: the month's last such weekday.
    LastInMonth(u32),
    /// `n#k`: the month's k-th such weekday.
    Nth { weekday: u32, nth: u32 },
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    allows_step: bool,
}

const MINUTES: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
    allows_step: true,
};
const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
    allows_step: true,
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    allows_step: true,
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    allows_step: true,
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: &WEEKDAY_NAMES,
    allows_step: false,
};
const YEAR: Field = Field {
    name: "year",
    min: FIRST_YEAR as u32,
    max: LAST_YEAR as u32,
    names: &[],
    allows_step: true,
};

impl Field {
    fn error(&self, problem: impl Into<String>, found: &str) -> ScheduleError {
        ScheduleError::CronField {
            field: self.name,
            problem: problem.into(),
            found: found.to_string(),
        }
    }

    fn value(&self, text: &str, whole: &str) -> Result<u32, ScheduleError> {
        let upper = text.to_ascii_uppercase();
        if let Some(index) = self.names.iter().position(|name| *name == upper) {
            return Ok(self.min + index as u32);
        }
        let value: u32 = text.parse().map_err(|_| {
            let names = if self.names.is_empty() {
                String::new()
            } else {
                format!(" or {}-{}", self.names[0], self.names[self.names.len() - 1])
            };
            self.error(
                format!(
                    "{text:?} is not a number from {} to {}{names}",
                    self.min, self.max
                ),
                whole,
            )
        })?;
        if !(self.min..=self.max).contains(&value) {
            return Err(self.error(
                format!("{value} is out of range {}-{}", self.min, self.max),
                whole,
            ));
        }
        Ok(value)
    }

    /// A field made of `,`-separated `*`, values, ranges and steps.
    fn parse_set(&self, text: &str) -> Result<ValueSet, ScheduleError> {
        let mut matches = vec![false; (self.max - self.min + 1) as usize];
        for item in text.split(',') {
            if item.is_empty() {
                return Err(self.error("an empty list item", text));
            }
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => {
                    if !self.allows_step {
                        return Err(self.error("/ is not allowed here", text));
                    }
                    let step: u32 =
                        step.parse().ok().filter(|step| *step > 0).ok_or_else(|| {
                            self.error(format!("step {step:?} is not a positive number"), text)
                        })?;
                    (range, step)
                }
                None => (item, 1),
            };
            let (first, last) = if range == "*" {
                (self.min, self.max)
            } else if let Some((first, last)) = range.split_once('-') {
                let (first, last) = (self.value(first, text)?, self.value(last, text)?);
                if first > last {
                    return Err(self.error(format!("range {first}-{last} runs backwards"), text));
                }
                (first, last)
            } else {
                let first = self.value(range, text)?;
                // `a/step` runs from a to the field's end.
                (first, if item.contains('/') { self.max } else { first })
            };
            for value in (first..=last).step_by(step as usize) {
                matches[(value - self.min) as usize] = true;
            }
        }
        Ok(ValueSet {
            min: self.min,
            matches,
        })
    }
}

impl CronExpression {
    /// Parses the text between `cron(` and `)`.
    pub fn parse(text: &str) -> Result<CronExpression, ScheduleError> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(ScheduleError::CronFieldCount {
                found: fields.len(),
            });
        }
        let (dom_text, dow_text) = (fields[2], fields[4]);
        if (dom_text == "?") == (dow_text == "?") {
            return Err(ScheduleError::CronDayFields {
                day_of_month: dom_text.to_string(),
                day_of_week: dow_text.to_string(),
            });
        }
        for (field, text) in [
            (&MINUTES, fields[0]),
            (&HOURS, fields[1]),
            (&MONTH, fields[3]),
            (&YEAR, fields[5]),
        ] {
            if text == "?" {
                return Err(field.error("? is only allowed in day-of-month and day-of-week", text));
            }
        }
        Ok(CronExpression {
            minutes: MINUTES.parse_set(fields[0])?,
            hours: HOURS.parse_set(fields[1])?,
            day_of_month: parse_day_of_month(dom_text)?,
            months: MONTH.parse_set(fields[3])?,
            day_of_week: parse_day_of_week(dow_text)?,
            years: YEAR.parse_set(fields[5])?,
        })
    }

    /// The first firing strictly after `after`, reading wall-clock times in `time_zone`;
    /// `None` when there is none before the end of year 2199.
    pub fn next_after(&self, after: Timestamp, time_zone: &TimeZone) -> Option<Timestamp> {
        let mut date = after.to_zoned_datetime(time_zone.clone()).date();
        loop {
            let year = date.year();
            if year > LAST_YEAR {
                return None;
            }
            if !self.years.contains(year as u32) {
                date = Date::new(year.checked_add(1)?, 1, 1).ok()?;
                continue;
            }
            if !self.months.contains(date.month() as u32) {
                date = date.last_of_month().tomorrow().ok()?;
                continue;
            }
            if self.day_matches(date) {
                if let Some(first) = self.first_on(date, after, time_zone) {
                    return Some(first);
                }
            }
            date = date.tomorrow().ok()?;
        }
    }

    /// The earliest firing on `date` after `after`. Times are tried in wall-clock order,
    /// which is time order except for a time in a skipped hour (it lands after the change,
    /// later than the times right after it), so the search stops at the first time after
    /// `after` that was not skipped.
    fn first_on(&self, date: Date, after: Timestamp, time_zone: &TimeZone) -> Option<Timestamp> {
        let mut first: Option<Timestamp> = None;
        for hour in self.hours.values() {
            for minute in self.minutes.values() {
                let wall = date.at(hour as i8, minute as i8, 0, 0);
                let ambiguous = time_zone.to_ambiguous_timestamp(wall);
                let skipped = matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. });
                let Ok(instant) = ambiguous.compatible() else {
                    continue;
                };
                if instant <= after {
                    continue;
                }
                if first.is_none_or(|first| instant < first) {
                    first = Some(instant);
                }
                if !skipped {
                    return first;
                }
            }
        }
        first
    }

    fn day_matches(&self, date: Date) -> bool {
        let day = date.day();
        let weekday = date.weekday().to_sunday_zero_offset() as u32 + 1;
        let day_of_month = match &self.day_of_month {
            DayOfMonth::Any => true,
            DayOfMonth::Days(days) => days.contains(day as u32),
            DayOfMonth::Last => day == date.days_in_month(),
            DayOfMonth::LastWeekday => day == nearest_weekday(date, date.days_in_month()),
            DayOfMonth::NearestWeekday(target) => day == nearest_weekday(date, *target),
        };
        let day_of_week = match &self.day_of_week {
            DayOfWeek::Any => true,
            DayOfWeek::Days(days) => days.contains(weekday),
            DayOfWeek::LastInMonth(wanted) => weekday == *wanted && day + 7 > date.days_in_month(),
            DayOfWeek::Nth {
                weekday: wanted,
                nth,
            } => weekday == *wanted && (day as u32 - 1) / 7 + 1 == *nth,
        };
        day_of_month && day_of_week
    }
}

/// The day of `date`'s month that is the weekday nearest `target` (capped at the month's
/// length), without leaving the month.
fn nearest_weekday(date: Date, target: i8) -> i8 {
    let last = date.days_in_month();
    let target = target.min(last);
    let Ok(target_date) = Date::new(date.year(), date.month(), target) else {
        return target;
    };
    match target_date.weekday().to_sunday_zero_offset() {
        6 if target == 1 => 3,             // Saturday the 1st: Monday the 3rd
        6 => target - 1,                   // Saturday: the Friday before
        0 if target == last => target - 2, // Sunday the last: the Friday before
        0 => target + 1,                   // Sunday: the Monday after
        _ => target,
    }
}

fn parse_day_of_month(text: &str) -> Result<DayOfMonth, ScheduleError> {
    match text {
        "?" => return Ok(DayOfMonth::Any),
        "L" => return Ok(DayOfMonth::Last),
        "LW" => return Ok(DayOfMonth::LastWeekday),
        _ => {}
    }
    if text.contains('L') || text.contains('W') {
        let Some(day) = text.strip_suffix('W') else {
            return Err(DAY_OF_MONTH.error("L stands alone (L or LW)", text));
        };
        if day.contains(',') || day.contains('-') || day.contains('/') {
            return Err(
                DAY_OF_MONTH.error("W takes one day (such as 15W), not a list or range", text)
            );
        }
        let day = DAY_OF_MONTH.value(day, text)?;
        return Ok(DayOfMonth::NearestWeekday(day as i8));
    }
    Ok(DayOfMonth::Days(DAY_OF_MONTH.parse_set(text)?))
}

fn parse_day_of_week(text: &str) -> Result<DayOfWeek, ScheduleError> {
    match text {
        "?" => return Ok(DayOfWeek::Any),
        // Quartz's reading of a lone L in day-of-week: Saturday, the week's last day.
        "L" => return Ok(DayOfWeek::Days(DAY_OF_WEEK.parse_set("7")?)),
        _ => {}
    }
    let alone = |text: &str| !(text.contains(',') || text.contains('-') || text.contains('/'));
    if let Some((weekday, nth)) = text.split_once('#') {
        if !alone(text) {
            return Err(DAY_OF_WEEK.error(
                "# takes one weekday (such as 6#3), not a list or range",
                text,
            ));
        }
        let weekday = DAY_OF_WEEK.value(weekday, text)?;
        let nth = nth
            .parse::<u32>()
            .ok()
            .filter(|nth| (1..=5).contains(nth))
            .ok_or_else(|| DAY_OF_WEEK.error(format!("#{nth} must be #1 to #5"), text))?;
        return Ok(DayOfWeek::Nth { weekday, nth });
    }
    let upper = text.to_ascii_uppercase();
    if let Some(weekday) = upper.strip_suffix('L') {
        if !alone(text) {
            return Err(DAY_OF_WEEK.error(
                "L takes one weekday (such as 6L), not a list or range",
                text,
            ));
        }
        return Ok(DayOfWeek::LastInMonth(DAY_OF_WEEK.value(weekday, text)?));
    }
    Ok(DayOfWeek::Days(DAY_OF_WEEK.parse_set(text)?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::tz::TimeZoneDatabase;

    use super::*;

    /// Whether the wall-clock minute `instant` falls on matches every field.
    fn matches_minute(cron: &CronExpression, instant: Timestamp, time_zone: &TimeZone) -> bool {
        let wall = instant.to_zoned_datetime(time_zone.clone()).datetime();
        cron.minutes.contains(wall.minute() as u32)
            && cron.hours.contains(wall.hour() as u32)
            && cron.months.contains(wall.month() as u32)
            && cron.years.contains(wall.year() as u32)
            && cron.day_matches(wall.date())
    }

    #[test]
    fn next_after_finds_exactly_the_minutes_a_brute_force_walk_finds() {
        // Zones without DST changes, so every wall-clock minute happens exactly once.
        let zones = ["UTC", "Asia/Tokyo", "Asia/Kolkata"];
        let expressions = [
            "0/20 9-17 ? * MON-FRI *",
            "15 3 L * ? *",
            "0 12 15W * ? *",
            "30 6 ? * 2#1 *",
            "45 23 ? * SUNL *",
            "0 0,12 1-7 */2 ? 2026",
        ];
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let minutes = 120 * 24 * 60;
        for zone in zones {
            let time_zone = TimeZoneDatabase::bundled().get(zone).unwrap();
            for expression in expressions {
                let cron = CronExpression::parse(expression).unwrap();
                let walked: Vec<Timestamp> = (1..=minutes)
                    .map(|minute| start.checked_add(Duration::from_secs(60 * minute)).unwrap())
                    .filter(|instant| matches_minute(&cron, *instant, &time_zone))
                    .collect();
                let end = start
                    .checked_add(Duration::from_secs(60 * minutes))
                    .unwrap();
                let mut found = Vec::new();
                let mut cursor = start;
                while let Some(next) = cron.next_after(cursor, &time_zone) {
                    if next > end {
                        break;
                    }
                    found.push(next);
                    cursor = next;
                }
                assert!(!walked.is_empty(), "{expression} in {zone} never fires");
                assert_eq!(found, walked, "{expression} in {zone}");
            }
        }
    }
}
