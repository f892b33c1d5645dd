use std::collections::BTreeMap;

use super::eval::{order, wildcard_match};
use super::parser::time_span;
use super::*;

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An instance `i-1` registered 2018-02-13T12:00:00Z, running `running` tasks in `groups`.
fn view<'a>(
    attributes: &'a BTreeMap<String, String>,
    running: u32,
    groups: &[&'a str],
) -> InstanceView<'a> {
    InstanceView {
        instance_id: "i-1",
        ec2_instance_id: "i-1",
        attributes,
        registered_at: 1_518_523_200.0,
        running_tasks_count: running,
        task_groups: groups.to_vec(),
        agent_connected: true,
    }
}

fn holds(expression: &str, view: &InstanceView<'_>) -> bool {
    parse(expression)
        .unwrap_or_else(|e| panic!("{expression:?}: {e}"))
        .holds_for(view)
}

fn error(expression: &str) -> String {
    parse(expression)
        .err()
        .unwrap_or_else(|| panic!("{expression:?} parsed"))
        .to_string()
}

#[test]
fn equality_in_symbols_and_words_with_wildcards() {
    let a = attrs(&[("zone", "a"), ("ecs.instance-type", "t2.small")]);
    let v = view(&a, 0, &[]);
    for e in [
        "attribute:zone == a",
        "attribute:zone equals a",
        "attribute:zone==a",
    ] {
        assert!(holds(e, &v), "{e}");
    }
    for e in ["attribute:zone != b", "attribute:zone not_equals b"] {
        assert!(holds(e, &v), "{e}");
    }
    assert!(!holds("attribute:zone == b", &v));
    assert!(!holds("attribute:zone != a", &v));
    assert!(holds("attribute:ecs.instance-type == t2.*", &v));
    assert!(holds("attribute:ecs.instance-type == *.small", &v));
    assert!(holds("attribute:ecs.instance-type == t*.s*l", &v));
    assert!(!holds("attribute:ecs.instance-type == m5.*", &v));
    assert!(holds("attribute:ecs.instance-type != m5.*", &v));
    assert!(holds("attribute:zone == 'a'", &v), "quoted");
}

#[test]
fn ordering_operators_compare_versions_numbers_and_text() {
    let a = attrs(&[("gen", "10"), ("version", "1.14.5"), ("name", "beta")]);
    let v = view(&a, 0, &[]);
    let cases = [
        ("attribute:gen > 9", true),
        ("attribute:gen greater_than 10", false),
        ("attribute:gen >= 10", true),
        ("attribute:gen greater_than_equal 11", false),
        ("attribute:gen < 11", true),
        ("attribute:gen less_than 10", false),
        ("attribute:gen <= 10", true),
        ("attribute:gen less_than_equal 9", false),
        ("attribute:version < 1.15", true),
        ("attribute:version > 1.9.9", true),
        ("attribute:name > alpha", true),
        ("attribute:name < alpha", false),
    ];
    for (e, want) in cases {
        assert_eq!(holds(e, &v), want, "{e}");
    }
    assert_eq!(order("2", "10"), std::cmp::Ordering::Less);
    assert_eq!(order("1.5e1", "9"), std::cmp::Ordering::Greater);
}

#[test]
fn exists_and_absent_attributes() {
    let a = attrs(&[("stack", "prod")]);
    let v = view(&a, 0, &[]);
    assert!(holds("attribute:stack exists", &v));
    assert!(!holds("attribute:stack !exists", &v));
    assert!(holds("attribute:gpu !exists", &v));
    assert!(holds("attribute:gpu not_exists", &v));
    assert!(!holds("attribute:gpu exists", &v));
    // An absent attribute satisfies no comparison, negative ones included.
    for e in [
        "attribute:gpu == x",
        "attribute:gpu != x",
        "attribute:gpu in [x]",
        "attribute:gpu !in [x]",
        "attribute:gpu =~ .*",
        "attribute:gpu !~ x",
        "attribute:gpu > 0",
    ] {
        assert!(!holds(e, &v), "{e}");
    }
    assert!(holds("not(attribute:gpu == x)", &v));
}

#[test]
fn lists_and_patterns() {
    let a = attrs(&[("zone", "us-east-1a"), ("type", "g2.2xlarge")]);
    let v = view(&a, 0, &[]);
    let cases = [
        ("attribute:zone in [us-east-1a, us-east-1b]", true),
        ("attribute:zone in [us-east-1b]", false),
        ("attribute:zone in [us-east-*]", true),
        ("attribute:zone in ['us-east-1a']", true),
        ("attribute:zone !in [us-east-1b, us-east-1c]", true),
        ("attribute:zone not_in [us-east-1a]", false),
        ("attribute:type =~ g2.*", true),
        ("attribute:type matches g2.*", true),
        ("attribute:type =~ g2", false),
        ("attribute:type !~ t2.*", true),
        ("attribute:type not_matches g2.*", false),
        ("attribute:type =~ (g2|p3)\\..*", true),
        ("attribute:type =~ [gp][23].2xlarge", true),
        ("attribute:type =~ 'g2 .*'", false),
        ("(attribute:type =~ g(2|3).*)", true),
    ];
    for (e, want) in cases {
        assert_eq!(holds(e, &v), want, "{e}");
    }
}

#[test]
fn instance_ids_running_tasks_and_agent() {
    let a = attrs(&[]);
    let v = view(&a, 1, &[]);
    let cases = [
        ("instanceId == i-1", true),
        ("instanceId in ['i-abcd1234', 'i-1']", true),
        ("ec2InstanceId != i-1", false),
        ("ec2InstanceId =~ i-.*", true),
        ("runningTasksCount == 1", true),
        ("runningTasksCount != 1", false),
        ("runningTasksCount > 0", true),
        ("runningTasksCount >= 2", false),
        ("runningTasksCount < 2", true),
        ("runningTasksCount <= 0", false),
        ("agentConnected == true", true),
        ("agentConnected == false", false),
    ];
    for (e, want) in cases {
        assert_eq!(holds(e, &v), want, "{e}");
    }
}

#[test]
fn registered_at_compares_days_and_seconds() {
    let a = attrs(&[]);
    let v = view(&a, 0, &[]); // 2018-02-13T12:00:00Z
    let cases = [
        ("registeredAt == 2018-02-13", true),
        ("registeredAt < 2018-02-13", false),
        ("registeredAt <= 2018-02-13", true),
        ("registeredAt < 2018-02-14", true),
        ("registeredAt > 2018-02-12", true),
        ("registeredAt >= 2018-02-14", false),
        ("registeredAt != 2018-02-13", false),
        ("registeredAt == 2018-02-13T12:00:00Z", true),
        ("registeredAt == 2018-02-13T12:00:00", true),
        ("registeredAt == 2018-02-13T14:00:00+02:00", true),
        ("registeredAt == 2018-02-13T12:00:00.5Z", true),
        ("registeredAt > 2018-02-13T11:59:59Z", true),
        ("registeredAt < 2018-02-13T07:00:00-05:00", false),
    ];
    for (e, want) in cases {
        assert_eq!(holds(e, &v), want, "{e}");
    }
    assert_eq!(time_span("1970-01-01").unwrap().start, 0.0);
    assert_eq!(time_span("2000-03-01").unwrap().start, 951_868_800.0);
    for bad in [
        "2018-02-30",
        "2018-13-01",
        "18-02-13",
        "2018-02-13T25:00:00",
        "2018-02-13T12:00",
    ] {
        assert!(time_span(bad).is_none(), "{bad}");
    }
}

#[test]
fn task_groups_match_any_and_their_negations_match_none() {
    let a = attrs(&[]);
    let busy = view(&a, 2, &["service:web", "service:db"]);
    let empty = view(&a, 0, &[]);
    let cases = [
        ("task:group == service:db", true, false),
        ("task:group != service:db", false, true),
        ("task:group != service:cache", true, true),
        ("task:group in [service:cache, service:web]", true, false),
        ("task:group !in [service:cache]", true, true),
        ("task:group =~ service:.*", true, false),
        ("task:group !~ service:d.*", false, true),
        ("task:group exists", true, false),
        ("task:group !exists", false, true),
        ("not(task:group == service:db)", false, true),
    ];
    for (e, on_busy, on_empty) in cases {
        assert_eq!(holds(e, &busy), on_busy, "{e} on busy");
        assert_eq!(holds(e, &empty), on_empty, "{e} on empty");
    }
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let a = attrs(&[("a", "1"), ("b", "0"), ("c", "1")]);
    let v = view(&a, 0, &[]);
    // b false: "a or b and c" is a or (b and c) = true; (a or b) and c = true too, so
    // use c false below to tell them apart.
    let a2 = attrs(&[("a", "1"), ("b", "0"), ("c", "0")]);
    let v2 = view(&a2, 0, &[]);
    assert!(holds(
        "attribute:a == 1 or attribute:b == 1 and attribute:c == 1",
        &v2
    ));
    assert!(!holds(
        "(attribute:a == 1 or attribute:b == 1) and attribute:c == 1",
        &v2
    ));
    assert!(holds(
        "attribute:a == 1 || attribute:b == 1 && attribute:c == 1",
        &v2
    ));
    // not applies to the comparison next to it only.
    assert!(!holds("not attribute:a == 1 and attribute:c == 1", &v));
    assert!(holds("not attribute:b == 1 and attribute:c == 1", &v));
    assert!(holds("!attribute:b == 1 && attribute:c == 1", &v));
    assert!(holds("!(attribute:a == 1 and attribute:b == 1)", &v));
    assert!(holds("not not attribute:a == 1", &v));
    assert_eq!(
        parse("attribute:a == 1 or attribute:b == 1 and attribute:c == 1").unwrap(),
        parse("attribute:a == 1 or (attribute:b == 1 and attribute:c == 1)").unwrap()
    );
}

#[test]
fn ecs_documentation_examples_parse() {
    for e in [
        "attribute:ecs.instance-type == t2.small",
        "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]",
        "attribute:ecs.instance-type =~ g2.* and attribute:ecs.availability-zone != us-east-1d",
        "task:group == service:production",
        "not(task:group == database)",
        "runningTasksCount == 1",
        "registeredAt < 2018-02-13",
        "ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']",
        "attribute:ecs.instance-type =~ t2.*",
    ] {
        parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
    }
}

#[test]
fn errors_name_the_byte_offset_and_what_was_expected() {
    let cases = [
        ("", "at 0: expected a subject"),
        ("   ", "at 3: expected a subject"),
        (
            "attribute:zone zzz",
            "at 15: expected an operator after \"attribute:zone\", found \"zzz\"",
        ),
        (
            "attribute:zone ==",
            "at 17: expected a value after \"==\", found the end",
        ),
        ("zone == a", "at 0: unknown subject \"zone\""),
        ("attribute: == a", "at 10: expected an attribute name"),
        (
            "attribute:zo@ne == a",
            "at 12: an attribute name may contain",
        ),
        (
            "attribute:zone == a b",
            "at 20: expected and, or or the end, found \"b\"",
        ),
        ("attribute:zone == a and", "at 23: expected a subject"),
        (
            "(attribute:zone == a",
            "at 20: expected \")\" to close the \"(\" at 0, found the end",
        ),
        (
            "attribute:zone == a)",
            "at 19: expected and, or or the end, found \")\"",
        ),
        (
            "attribute:zone in a",
            "at 18: expected a list such as [a, b] after \"in\", found \"a\"",
        ),
        (
            "attribute:zone in [a b]",
            "at 21: expected \",\" or \"]\" in the list opened at 18",
        ),
        (
            "attribute:zone in [a,]",
            "at 21: expected a value after \",\", found \"]\"",
        ),
        (
            "attribute:zone =~ t2(",
            "at 18: not a valid regular expression",
        ),
        (
            "attribute:zone =~ 'a)|(b'",
            "at 18: not a valid regular expression",
        ),
        (
            "attribute:zone == 'a",
            "at 18: the ' opened here is not closed",
        ),
        (
            "runningTasksCount =~ 1",
            "at 18: runningTasksCount takes ==, !=, >, >=, < or <=, found \"=~\"",
        ),
        (
            "runningTasksCount > many",
            "at 20: runningTasksCount compares with a whole number",
        ),
        (
            "registeredAt < yesterday",
            "at 15: registeredAt compares with a date",
        ),
        (
            "instanceId > i-1",
            "at 11: instanceId takes ==, !=, in, !in, =~ or !~, found \">\"",
        ),
        ("task:group < a", "at 11: task:group takes"),
        (
            "instanceId !x",
            "at 11: expected an operator after \"instanceId\", found \"!\"",
        ),
    ];
    for (e, want) in cases {
        let got = error(e);
        assert!(
            got.starts_with(want),
            "{e:?}: got {got:?}, want {want:?}..."
        );
    }
}

#[test]
fn a_member_of_constraint_is_checked_at_its_field() {
    let field = "placementConstraints[0].expression";
    assert!(check_member_of(field, Some("attribute:zone == a")).is_ok());
    let e = check_member_of(field, Some("attribute:zone zzz")).unwrap_err();
    assert_eq!(e.field, field);
    assert!(e.message.starts_with("at 15: expected an operator"), "{e}");
    let e = check_member_of(field, None).unwrap_err();
    assert!(
        e.message.contains("needs a cluster query expression"),
        "{e}"
    );
    let long = format!("attribute:zone == {}", "a".repeat(MAX_EXPRESSION_LEN));
    let e = check_member_of(field, Some(&long)).unwrap_err();
    assert!(e.message.contains("at most 2000 characters"), "{e}");
}

#[test]
fn wildcards_match_runs_of_characters() {
    assert!(wildcard_match("a", "a"));
    assert!(!wildcard_match("a", "ab"));
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match("a*", "abc"));
    assert!(wildcard_match("*c", "abc"));
    assert!(wildcard_match("a*c", "ac"));
    assert!(!wildcard_match("ab*bc", "abc"), "parts may not overlap");
    assert!(wildcard_match("a*b*c", "a-b-c"));
    assert!(!wildcard_match("a*b*c", "a-c-b"));
}
