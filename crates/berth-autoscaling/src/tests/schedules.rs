//! Schedules and scheduled actions: at/rate/cron parsing and errors, next firings across
//! day boundaries, in non-UTC time zones and across DST changes, and actions setting the
//! bounds in an evaluation.

use super::*;
use crate::error::ScheduleError;
use crate::outcome::Trigger;
use crate::schedule::Schedule;
use crate::target::ScaleOutRecord;

fn instant(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn next(expression: &str, timezone: Option<&str>, after: &str) -> Option<String> {
    let schedule = Schedule::parse(expression, timezone).unwrap();
    schedule
        .next_after(instant(after), instant(after))
        .map(|firing| firing.to_string())
}

fn error(expression: &str, timezone: Option<&str>) -> String {
    Schedule::parse(expression, timezone)
        .unwrap_err()
        .to_string()
}

#[test]
fn malformed_schedules_are_refused_naming_what_is_wrong() {
    assert_eq!(
        error("cron(0 8 * * ?)", None),
        "schedule: cron needs 6 fields, found 5 (minutes hours day-of-month month day-of-week year)"
    );
    assert_eq!(
        error("cron(61 8 * * ? *)", None),
        "schedule: cron minutes field: 61 is out of range 0-59, got \"61\""
    );
    assert_eq!(
        error("cron(0 8 * * MON *)", None),
        "schedule: cron needs ? in exactly one of day-of-month and day-of-week, got \"*\" and \"MON\""
    );
    assert!(matches!(
        Schedule::parse("cron(0 8 ? * ? *)", None),
        Err(ScheduleError::CronDayFields { .. })
    ));
    assert_eq!(
        error("cron(0 8 ? * FUNDAY *)", None),
        "schedule: cron day-of-week field: \"FUNDAY\" is not a number from 1 to 7 or SUN-SAT, got \"FUNDAY\""
    );
    assert_eq!(
        error("cron(0 8 ? * MON/2 *)", None),
        "schedule: cron day-of-week field: / is not allowed here, got \"MON/2\""
    );
    assert_eq!(
        error("cron(0 17-9 * * ? *)", None),
        "schedule: cron hours field: range 17-9 runs backwards, got \"17-9\""
    );
    assert_eq!(
        error("cron(0 8 ? * 6#6 *)", None),
        "schedule: cron day-of-week field: #6 must be #1 to #5, got \"6#6\""
    );
    assert_eq!(
        error("cron(0 8 * * ? 1969)", None),
        "schedule: cron year field: 1969 is out of range 1970-2199, got \"1969\""
    );
    assert_eq!(
        error("rate(5 minute)", None),
        "schedule: rate(5 minute) must use the unit minutes"
    );
    assert_eq!(
        error("rate(1 hours)", None),
        "schedule: rate(1 hours) must use the unit hour"
    );
    assert!(error("rate(0 minutes)", None)
        .starts_with("schedule: rate() needs a positive whole number"));
    assert!(error("rate(5 fortnights)", None).starts_with("schedule: rate() needs"));
    assert_eq!(
        error("at(2026-06-01 09:00:00)", None),
        "schedule: at() needs a date and time as yyyy-mm-ddThh:mm:ss, got \"2026-06-01 09:00:00\""
    );
    assert!(error("at(2026-02-30T09:00:00)", None).starts_with("schedule: at() needs"));
    assert!(error("every day at nine", None).starts_with("schedule: must be at("));
    assert_eq!(
        error("cron(0 8 * * ? *)", Some("Mars/Olympus_Mons")),
        "timezone: \"Mars/Olympus_Mons\" is not an IANA time zone name (such as Europe/Paris or UTC)"
    );
}

#[test]
fn cron_fires_across_a_day_boundary() {
    // 23:30 UTC every day: asked at 23:45, the next is tomorrow's.
    assert_eq!(
        next("cron(30 23 * * ? *)", None, "2026-03-10T23:45:00Z").as_deref(),
        Some("2026-03-11T23:30:00Z")
    );
    // Across a month and a year end.
    assert_eq!(
        next("cron(0 0 * * ? *)", None, "2026-12-31T12:00:00Z").as_deref(),
        Some("2027-01-01T00:00:00Z")
    );
}

#[test]
fn cron_reads_wall_clock_time_in_its_time_zone() {
    // 00:30 in Tokyo is 15:30 UTC the day before.
    assert_eq!(
        next(
            "cron(30 0 * * ? *)",
            Some("Asia/Tokyo"),
            "2026-01-01T12:00:00Z"
        )
        .as_deref(),
        Some("2026-01-01T15:30:00Z")
    );
    // Weekdays at 9:00 in New York (EST, UTC-5): after Friday's, Monday's.
    assert_eq!(
        next(
            "cron(0 9 ? * MON-FRI *)",
            Some("America/New_York"),
            "2026-01-09T15:00:00Z"
        )
        .as_deref(),
        Some("2026-01-12T14:00:00Z")
    );
}

#[test]
fn cron_follows_daylight_saving_changes() {
    let new_york = Some("America/New_York");
    // 02:30 every day. On 2026-03-08 the clock skips from 02:00 to 03:00: that day it
    // fires at 03:30 EDT (07:30 UTC, as the day before at 02:30 EST); the next day at
    // 02:30 EDT (06:30 UTC).
    assert_eq!(
        next("cron(30 2 * * ? *)", new_york, "2026-03-07T08:00:00Z").as_deref(),
        Some("2026-03-08T07:30:00Z")
    );
    assert_eq!(
        next("cron(30 2 * * ? *)", new_york, "2026-03-08T07:30:00Z").as_deref(),
        Some("2026-03-09T06:30:00Z")
    );
    // 01:30 every day. On 2026-11-01 01:00-02:00 happens twice: it fires once, at the
    // first 01:30 (EDT, 05:30 UTC), then the next day at 01:30 EST (06:30 UTC).
    assert_eq!(
        next("cron(30 1 * * ? *)", new_york, "2026-11-01T00:00:00Z").as_deref(),
        Some("2026-11-01T05:30:00Z")
    );
    assert_eq!(
        next("cron(30 1 * * ? *)", new_york, "2026-11-01T05:30:00Z").as_deref(),
        Some("2026-11-02T06:30:00Z")
    );
    // Times in and after the skipped hour each fire once, in time order: 02:00 and 03:00
    // are both 07:00 UTC that day, 02:30 and 03:30 both 07:30 UTC.
    let twice_an_hour = "cron(0,30 2,3 * * ? *)";
    let firings: Vec<Option<String>> = [
        "2026-03-08T06:00:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-08T07:30:00Z",
    ]
    .iter()
    .map(|after| next(twice_an_hour, new_york, after))
    .collect();
    assert_eq!(
        firings,
        vec![
            Some("2026-03-08T07:00:00Z".to_string()),
            Some("2026-03-08T07:30:00Z".to_string()),
            Some("2026-03-09T06:00:00Z".to_string()),
        ]
    );
    // Paris moves to summer time on 2026-03-29: 08:00 is 07:00 UTC before, 06:00 after.
    assert_eq!(
        next(
            "cron(0 8 * * ? *)",
            Some("Europe/Paris"),
            "2026-03-28T07:00:00Z"
        )
        .as_deref(),
        Some("2026-03-29T06:00:00Z")
    );
}

#[test]
fn cron_special_characters() {
    // L: the month's last day.
    assert_eq!(
        next("cron(0 0 L * ? *)", None, "2026-02-10T00:00:00Z").as_deref(),
        Some("2026-02-28T00:00:00Z")
    );
    // 15W: 2026-08-15 is a Saturday, so Friday the 14th.
    assert_eq!(
        next("cron(0 0 15W * ? *)", None, "2026-08-01T00:00:00Z").as_deref(),
        Some("2026-08-14T00:00:00Z")
    );
    // LW: the last weekday of February 2026 (the 28th is a Saturday) is the 27th.
    assert_eq!(
        next("cron(0 0 LW * ? *)", None, "2026-02-01T00:00:00Z").as_deref(),
        Some("2026-02-27T00:00:00Z")
    );
    // 6#3: the third Friday of January 2026.
    assert_eq!(
        next("cron(0 12 ? * 6#3 *)", None, "2026-01-01T00:00:00Z").as_deref(),
        Some("2026-01-16T12:00:00Z")
    );
    // FRIL: the last Friday.
    assert_eq!(
        next("cron(0 12 ? * FRIL *)", None, "2026-01-01T00:00:00Z").as_deref(),
        Some("2026-01-30T12:00:00Z")
    );
    // Steps, lists and month names.
    assert_eq!(
        next("cron(0/15 * * * ? *)", None, "2026-01-01T10:07:00Z").as_deref(),
        Some("2026-01-01T10:15:00Z")
    );
    assert_eq!(
        next("cron(0 6,18 1 JAN,jul ? *)", None, "2026-01-01T07:00:00Z").as_deref(),
        Some("2026-01-01T18:00:00Z")
    );
    assert_eq!(
        next("cron(0 6,18 1 JAN,jul ? *)", None, "2026-01-01T18:00:00Z").as_deref(),
        Some("2026-07-01T06:00:00Z")
    );
    // A year field that has passed: no more firings.
    assert_eq!(
        next("cron(0 0 1 1 ? 2030)", None, "2026-05-01T00:00:00Z").as_deref(),
        Some("2030-01-01T00:00:00Z")
    );
    assert_eq!(
        next("cron(0 0 1 1 ? 2030)", None, "2030-01-01T00:00:00Z"),
        None
    );
}

#[test]
fn at_and_rate() {
    // at() is wall-clock time in the zone: 09:00 in Paris in June is 07:00 UTC.
    let at_nine = Schedule::parse("at(2026-06-01T09:00:00)", Some("Europe/Paris")).unwrap();
    let before = instant("2026-05-01T00:00:00Z");
    assert_eq!(
        at_nine.next_after(before, before),
        Some(instant("2026-06-01T07:00:00Z"))
    );
    assert_eq!(
        at_nine.next_after(instant("2026-06-01T07:00:00Z"), before),
        None
    );

    // rate() counts periods from its anchor.
    let every_five = Schedule::parse("rate(5 minutes)", None).unwrap();
    let anchor = instant("2026-01-01T00:00:00Z");
    assert_eq!(
        every_five.next_after(instant("2025-12-31T00:00:00Z"), anchor),
        Some(anchor)
    );
    assert_eq!(
        every_five.next_after(anchor, anchor),
        Some(instant("2026-01-01T00:05:00Z"))
    );
    assert_eq!(
        every_five.next_after(instant("2026-01-01T00:07:30Z"), anchor),
        Some(instant("2026-01-01T00:10:00Z"))
    );
    assert_eq!(
        Schedule::parse("rate(1 day)", None).unwrap().rate(),
        Some(secs(86_400))
    );
}

fn action(
    name: &str,
    schedule: &str,
    timezone: Option<&str>,
    min: Option<u32>,
    max: Option<u32>,
) -> ScheduledAction {
    ScheduledAction {
        name: name.into(),
        schedule: Schedule::parse(schedule, timezone).unwrap(),
        start_time: None,
        end_time: None,
        min_capacity: min,
        max_capacity: max,
        created_at: instant("2026-01-01T00:00:00Z"),
    }
}

#[test]
fn a_scheduled_action_sets_the_bounds_and_the_desired_count_follows() {
    // Mornings at 08:00 Paris time (07:00 UTC in January): at least 5; evenings at 20:00
    // at most 3.
    let actions = [
        action(
            "morning",
            "cron(0 8 * * ? *)",
            Some("Europe/Paris"),
            Some(5),
            Some(10),
        ),
        action(
            "evening",
            "cron(0 20 * * ? *)",
            Some("Europe/Paris"),
            Some(1),
            Some(3),
        ),
    ];
    let policy = Policy::TargetTracking(tracking("requests-100", 100.0));
    let metric = steady(0, 120, 95.0);

    let morning = instant("2026-01-06T07:00:00Z");
    let evaluation = run_with_actions(
        &target(2, 1, 10),
        &[(&policy, &metric)],
        &actions,
        instant("2026-01-06T06:59:59Z"),
        morning,
    );
    assert_eq!(evaluation.bounds, CapacityBounds { min: 5, max: 10 });
    assert_eq!(evaluation.fired_action.as_deref(), Some("morning"));
    let change = evaluation.change.unwrap();
    assert_eq!((change.from, change.to), (2, 5));
    assert_eq!(
        change.trigger,
        Trigger::ScheduledAction {
            name: "morning".into()
        }
    );
    assert_eq!(change.description, "Setting desired count to 5.");
    assert!(
        change
            .cause
            .starts_with("scheduled action name morning was triggered"),
        "{}",
        change.cause
    );

    // Not due yet one second earlier: nothing.
    let evaluation = run_with_actions(
        &target(2, 1, 10),
        &[(&policy, &metric)],
        &actions,
        instant("2026-01-06T06:59:58Z"),
        instant("2026-01-06T06:59:59Z"),
    );
    assert_eq!(
        (evaluation.fired_action, evaluation.bounds),
        (None, CapacityBounds { min: 1, max: 10 })
    );

    // The evening action caps 8 tasks at 3, even in a scale-out cooldown: scheduled
    // actions ignore cooldowns.
    let mut busy = target(8, 5, 10);
    busy.activity.last_scale_out = Some(ScaleOutRecord {
        at: instant("2026-01-06T18:59:00Z"),
        from: 5,
        to: 8,
    });
    let evaluation = run_with_actions(
        &busy,
        &[(&policy, &metric)],
        &actions,
        instant("2026-01-06T18:59:30Z"),
        instant("2026-01-06T19:00:30Z"),
    );
    assert_eq!(evaluation.bounds, CapacityBounds { min: 1, max: 3 });
    assert_eq!(new_desired(&evaluation), Some(3));
}

#[test]
fn the_latest_due_action_wins_and_start_and_end_times_bound_it() {
    let mut weekly = action("weekly", "cron(0 12 ? * MON *)", None, Some(4), None);
    let daily = action("daily", "cron(0 6 * * ? *)", None, Some(2), None);
    // Since Sunday: Monday 06:00 (daily) and Monday 12:00 (weekly) are due; weekly is later.
    let since = instant("2026-01-04T00:00:00Z");
    let now = instant("2026-01-05T13:00:00Z");
    let evaluation = run_with_actions(
        &target(1, 1, 10),
        &[],
        &[weekly.clone(), daily.clone()],
        since,
        now,
    );
    assert_eq!(evaluation.fired_action.as_deref(), Some("weekly"));
    assert_eq!(evaluation.bounds.min, 4);

    // The weekly action starts only on the 6th: the daily one is the one due.
    weekly.start_time = Some(instant("2026-01-06T00:00:00Z"));
    let evaluation = run_with_actions(
        &target(1, 1, 10),
        &[],
        &[weekly.clone(), daily.clone()],
        since,
        now,
    );
    assert_eq!(evaluation.fired_action.as_deref(), Some("daily"));
    assert_eq!(
        weekly.next_firing_after(since),
        Some(instant("2026-01-12T12:00:00Z"))
    );
    // An end time before the next firing: no more firings.
    weekly.end_time = Some(instant("2026-01-10T00:00:00Z"));
    assert_eq!(weekly.next_firing_after(since), None);

    // A min raised above the max carries the max with it.
    assert_eq!(
        action("big", "rate(1 hour)", None, Some(12), None)
            .apply_to(CapacityBounds { min: 1, max: 10 }),
        CapacityBounds { min: 12, max: 12 }
    );
}

#[test]
fn suspended_scheduled_scaling_leaves_the_bounds_alone() {
    let actions = [action("morning", "cron(0 8 * * ? *)", None, Some(5), None)];
    let mut state = target(2, 1, 10);
    state.suspended.scheduled_scaling_suspended = true;
    let evaluation = run_with_actions(
        &state,
        &[],
        &actions,
        instant("2026-01-06T07:59:00Z"),
        instant("2026-01-06T08:00:00Z"),
    );
    assert_eq!(evaluation.bounds, CapacityBounds { min: 1, max: 10 });
    assert_eq!(evaluation.change, None);
    assert_eq!(
        codes(&evaluation),
        vec![NotScaledCode::ScheduledScalingSuspended]
    );
}

#[test]
fn a_rate_action_counts_from_its_start_time_or_from_its_creation() {
    // Created at 2026-01-01T00:00Z without a start time: first one period later.
    let hourly = action("hourly", "rate(1 hour)", None, Some(2), None);
    let created = instant("2026-01-01T00:00:00Z");
    assert_eq!(
        hourly.next_firing_after(created),
        Some(instant("2026-01-01T01:00:00Z"))
    );
    assert_eq!(
        hourly.next_firing_after(instant("2026-01-01T01:00:00Z")),
        Some(instant("2026-01-01T02:00:00Z"))
    );
    // With a start time: at the start time, then every period.
    let started = ScheduledAction {
        start_time: Some(instant("2026-01-02T08:00:00Z")),
        ..hourly
    };
    assert_eq!(
        started.next_firing_after(created),
        Some(instant("2026-01-02T08:00:00Z"))
    );
    assert_eq!(
        started.next_firing_after(instant("2026-01-02T08:00:00Z")),
        Some(instant("2026-01-02T09:00:00Z"))
    );
    // Three firings came due since the last evaluation: the action applies once.
    let evaluation = run_with_actions(
        &target(1, 1, 10),
        &[],
        std::slice::from_ref(&started),
        instant("2026-01-02T07:30:00Z"),
        instant("2026-01-02T10:30:00Z"),
    );
    assert_eq!(evaluation.fired_action.as_deref(), Some("hourly"));
    assert_eq!(new_desired(&evaluation), Some(2));
}
