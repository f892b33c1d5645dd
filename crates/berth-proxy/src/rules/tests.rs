//! Rule compilation and matching, without sockets.

use super::*;

#[test]
fn host_port_is_stripped() {
    assert_eq!(strip_port("example.com:8080"), "example.com");
    assert_eq!(strip_port("example.com"), "example.com");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
}

#[test]
fn wildcards() {
    assert!(wildcard(b"/api/*", b"/api/users", false));
    assert!(wildcard(b"/api/*", b"/api/", false));
    assert!(!wildcard(b"/api/*", b"/API/x", false));
    assert!(wildcard(b"*.example.com", b"www.EXAMPLE.com", true));
    assert!(!wildcard(b"*.example.com", b"example.com", true));
    assert!(wildcard(b"/v?/x", b"/v1/x", false));
    assert!(!wildcard(b"/v?/x", b"/v12/x", false));
    assert!(wildcard(b"*a*b*c", b"xxaxxbxxc", false));
    assert!(!wildcard(b"*a*b*c", b"xxaxxcxxb", false));
    assert!(wildcard(b"*", b"", false));
    assert!(!wildcard(b"", b"x", false));
}

#[test]
fn compiled_patterns_agree_with_the_glob() {
    let cases = [
        ("*", "anything"),
        ("*", ""),
        ("/api/*", "/api/x"),
        ("/api/*", "/apx"),
        ("*.example.com", "a.EXAMPLE.com"),
        ("*.example.com", "example.com"),
        ("exact", "exact"),
        ("exact", "exact2"),
        ("a*b", "axxb"),
        ("a?c", "abc"),
    ];
    for (p, s) in cases {
        for ci in [false, true] {
            assert_eq!(
                Pattern::new(p).matches(s.as_bytes(), ci),
                wildcard(p.as_bytes(), s.as_bytes(), ci),
                "{p} {s} {ci}"
            );
        }
    }
    assert_eq!(Pattern::new("/api/*"), Pattern::Prefix((*b"/api/").into()));
    assert!(matches!(Pattern::new("*.x"), Pattern::Suffix(_)));
    assert!(matches!(Pattern::new("a*b"), Pattern::Glob(_)));
}

#[test]
fn quick_filter_never_rejects_a_match() {
    let cond = |v: &[&str]| vec![Condition::Path(v.iter().map(|p| Pattern::new(p)).collect())];
    let check = |pats: &[&str], path: &str, expect: bool| {
        let (m, v) = quick_filter(&cond(pats));
        assert_eq!(
            path_word(path.as_bytes()) & m == v,
            expect,
            "{pats:?} {path}"
        );
    };
    check(&["/api/v1/*"], "/api/v1/users", true);
    check(&["/api/v1/*"], "/api/v2/users", false);
    check(&["/api/v1/*"], "/ap", false);
    check(&["/a", "/b"], "/b", true);
    check(&["/api/*", "/apx"], "/apx", true);
    check(&["*.js"], "/x.js", true);
    check(&["/v?/x"], "/v9/x", true);
    check(&["/exact"], "/exact", true);
    assert_eq!(quick_filter(&[]), (0, 0));
}

/// The host pre-filter must pick the same rule as evaluating every rule in order, on
/// random rule sets mixing exact names, dot suffixes, other wildcards, paths and
/// methods, and on hosts in any case.
#[test]
fn host_prefilter_agrees_with_evaluating_every_rule() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let host_pats = [
        "a.example.com",
        "B.Example.COM",
        "example.com",
        "x.y.z",
        "*.example.com",
        "*.y.z",
        "*.Z",
        "*example.com",
        "*",
        "a.*",
        "?.example.com",
        "*.b.*",
        "",
    ];
    let hosts = [
        "a.example.com",
        "A.EXAMPLE.COM",
        "b.example.com",
        "a.b.example.com",
        "example.com",
        "EXAMPLE.com",
        ".example.com",
        "x.y.z",
        "w.X.y.z",
        "y.z",
        "z",
        "",
        "other",
        "notexample.com",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.example.com",
    ];
    let paths = ["/", "/api/x", "/static/app.js"];
    let fixed = |i: u32| CompiledAction::Fixed {
        status: StatusCode::OK,
        content_type: None,
        body: Bytes::from(i.to_string()),
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut matched = 0;
    for round in 0..300 {
        let n = rng.random_range(0..40u32);
        let rules: Vec<CompiledRule> = (0..n)
            .map(|i| {
                let mut conditions = Vec::new();
                if rng.random_bool(0.8) {
                    let k = rng.random_range(1..4);
                    conditions.push(Condition::Host(
                        (0..k)
                            .map(|_| Pattern::new(host_pats[rng.random_range(0..host_pats.len())]))
                            .collect(),
                    ));
                }
                if rng.random_bool(0.3) {
                    conditions.push(Condition::Path(vec![Pattern::new(
                        ["/api/*", "/static/*", "*"][rng.random_range(0..3)],
                    )]));
                }
                if rng.random_bool(0.2) {
                    conditions.push(Condition::Method(vec![Method::POST]));
                }
                if rng.random_bool(0.1) {
                    // A second host condition: both must hold.
                    conditions.push(Condition::Host(vec![Pattern::new(
                        host_pats[rng.random_range(0..host_pats.len())],
                    )]));
                }
                conditions.sort_by_key(Condition::cost);
                CompiledRule {
                    quick: quick_filter(&conditions),
                    // Shuffled priorities: the set sorts them.
                    priority: (i * 7919) % 1000 + 1,
                    conditions,
                    action: fixed(i),
                }
            })
            .collect();
        let set = RuleSet::new(rules, fixed(u32::MAX));
        let headers = HeaderMap::new();
        for host in hosts {
            for path in paths {
                for method in [Method::GET, Method::POST] {
                    let view = RequestView {
                        host,
                        path,
                        query: None,
                        method: &method,
                        headers: ViewHeaders::Map(&headers),
                        source: IpAddr::from([10, 0, 0, 1]),
                    };
                    let (a, n1) = set.select(&view);
                    let (b, n2) = set.select_all(&view);
                    assert!(
                        std::ptr::eq(a, b) && n1 == n2,
                        "round {round}: {host} {path} {method}"
                    );
                    matched += usize::from(!std::ptr::eq(a, &set.default));
                }
            }
        }
    }
    assert!(matched > 1000, "too few requests matched a rule: {matched}");
}

#[test]
fn cidrs() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(in_cidr(ip("10.1.2.3"), ip("10.0.0.0"), 8));
    assert!(!in_cidr(ip("11.1.2.3"), ip("10.0.0.0"), 8));
    assert!(in_cidr(ip("::ffff:10.1.2.3"), ip("10.0.0.0"), 8));
    assert!(in_cidr(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    assert!(in_cidr(ip("2001:db8::1"), ip("2001:db8::"), 32));
}

#[test]
fn redirect_placeholders() {
    let r = Redirect {
        protocol: "HTTPS".into(),
        host: "#{host}".into(),
        port: "443".into(),
        path: "/new/#{path}".into(),
        query: "#{query}&x=1".into(),
        status: StatusCode::MOVED_PERMANENTLY,
    };
    assert_eq!(
        r.location("http", "example.com", 80, "/a/b", Some("q=1")),
        "https://example.com/new/a/b?q=1&x=1"
    );
    let r = Redirect {
        protocol: "#{protocol}".into(),
        host: "other".into(),
        port: "#{port}".into(),
        path: "/#{path}".into(),
        query: "#{query}".into(),
        status: StatusCode::FOUND,
    };
    assert_eq!(
        r.location("http", "h", 8080, "/p", None),
        "http://other:8080/p"
    );
}

/// The index must pick the same rule as evaluating every rule in priority order, on
/// random rule sets of every indexed kind (host, path prefixes and suffixes, headers,
/// query strings) mixed with conditions it cannot index, and requests that hit, miss
/// and nearly hit them in any case.
#[test]
fn index_agrees_with_evaluating_every_rule_on_mixed_conditions() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let host_pats = [
        "api.example.com",
        "*.example.com",
        "*example.com",
        "api.*",
        "*",
        "a?i.*",
        "*.b.*",
        "",
    ];
    let path_pats = [
        "/api/*",
        "/api/v1/*",
        "/API/*",
        "*.js",
        "*.JS",
        "/static/*.css",
        "/exact",
        "/",
        "*",
        "/a?i/*",
        "?api*",
        "*/v1/*",
        "/api",
    ];
    let value_pats = [
        "gold", "GOLD", "gold*", "*-beta", "*", "g?ld", "", "1", "2*",
    ];
    let hosts = [
        "api.example.com",
        "API.EXAMPLE.COM",
        "www.example.com",
        "api.other",
        "x",
    ];
    let paths = [
        "/api/v1/users",
        "/API/x",
        "/api",
        "/app.js",
        "/app.JS",
        "/static/a.css",
        "/exact",
        "/",
        "",
        "/aPi/v1/",
        "/v1/x",
    ];
    let values = ["gold", "Gold", "golden", "x-beta", "silver", "", "1", "20"];
    let queries = [
        None,
        Some(""),
        Some("tier=gold"),
        Some("a=1&TIER=x-beta"),
        Some("tier"),
    ];
    let fixed = |i: u32| CompiledAction::Fixed {
        status: StatusCode::OK,
        content_type: None,
        body: Bytes::from(i.to_string()),
    };
    let tier = http::HeaderName::from_static("x-tier");
    let mut rng = StdRng::seed_from_u64(11);
    let mut matched = 0;
    let mut indexed = 0;
    for round in 0..200 {
        let n = rng.random_range(0..60u32);
        let pick = |pats: &[&str], rng: &mut StdRng| -> Vec<Pattern> {
            (0..rng.random_range(1..3))
                .map(|_| Pattern::new(pats[rng.random_range(0..pats.len())]))
                .collect()
        };
        let rules: Vec<CompiledRule> = (0..n)
            .map(|i| {
                let mut conditions = Vec::new();
                if rng.random_bool(0.3) {
                    conditions.push(Condition::Host(pick(&host_pats, &mut rng)));
                }
                if rng.random_bool(0.4) {
                    conditions.push(Condition::Path(pick(&path_pats, &mut rng)));
                }
                if rng.random_bool(0.3) {
                    conditions.push(Condition::Header(tier.clone(), pick(&value_pats, &mut rng)));
                }
                if rng.random_bool(0.3) {
                    let key = ["tier", "TIER", "t*", "a"][rng.random_range(0..4)];
                    let pairs = pick(&value_pats, &mut rng)
                        .into_iter()
                        .map(|v| (rng.random_bool(0.9).then(|| Pattern::new(key)), v))
                        .collect();
                    conditions.push(Condition::Query(pairs));
                }
                if rng.random_bool(0.1) {
                    conditions.push(Condition::Method(vec![Method::POST]));
                }
                conditions.sort_by_key(Condition::cost);
                CompiledRule {
                    quick: quick_filter(&conditions),
                    priority: (i * 7919) % 1000 + 1,
                    conditions,
                    action: fixed(i),
                }
            })
            .collect();
        let set = RuleSet::new(rules, fixed(u32::MAX));
        for host in hosts {
            for path in paths {
                for value in values {
                    let mut map = HeaderMap::new();
                    map.insert(&tier, http::HeaderValue::from_str(value).unwrap());
                    let raw = [httparse::Header {
                        name: "X-Tier",
                        value: value.as_bytes(),
                    }];
                    for query in queries {
                        for headers in [ViewHeaders::Map(&map), ViewHeaders::Raw(&raw)] {
                            let view = RequestView {
                                host,
                                path,
                                query,
                                method: &Method::GET,
                                headers,
                                source: IpAddr::from([10, 0, 0, 1]),
                            };
                            let (a, n1) = set.select(&view);
                            let (b, n2) = set.select_all(&view);
                            assert!(
                                std::ptr::eq(a, b) && n1 == n2,
                                "round {round}: {host} {path} {value} {query:?}"
                            );
                            matched += usize::from(!std::ptr::eq(a, &set.default));
                        }
                    }
                }
            }
        }
        indexed += set.rules.len() - set.index.always_len();
    }
    assert!(
        matched > 10_000,
        "too few requests matched a rule: {matched}"
    );
    assert!(indexed > 1000, "too few rules were indexed: {indexed}");
}

/// With 1,000 rules none of which can match, the index leaves every one out: the
/// request reaches the default action without a rule being evaluated in full.
#[test]
fn the_index_finds_no_candidates_among_rules_that_cannot_match() {
    let fixed = |i: u32| CompiledAction::Fixed {
        status: StatusCode::OK,
        content_type: None,
        body: Bytes::from(i.to_string()),
    };
    let tier = http::HeaderName::from_static("x-tier");
    let rules: Vec<CompiledRule> = (0..1000u32)
        .map(|i| {
            let conditions = match i % 4 {
                0 => vec![Condition::Host(vec![Pattern::new(&format!(
                    "svc{i}.example.com"
                ))])],
                1 => vec![Condition::Path(vec![Pattern::new(&format!("/svc{i}/*"))])],
                2 => vec![Condition::Header(
                    tier.clone(),
                    vec![Pattern::new(&format!("t{i}"))],
                )],
                _ => vec![Condition::Query(vec![(
                    Some(Pattern::new("version")),
                    Pattern::new(&format!("{i}")),
                )])],
            };
            CompiledRule {
                quick: quick_filter(&conditions),
                priority: i + 1,
                conditions,
                action: fixed(i),
            }
        })
        .collect();
    let set = RuleSet::new(rules, fixed(u32::MAX));
    assert_eq!(set.index.always_len(), 0);
    let headers = HeaderMap::new();
    let view = |path, query| RequestView {
        host: "www.example.com",
        path,
        query,
        method: &Method::GET,
        headers: ViewHeaders::Map(&headers),
        source: IpAddr::from([10, 0, 0, 1]),
    };
    let mut lists = index::Lists::new();
    assert!(set
        .index
        .candidates(&view("/static/app.js", Some("version=x")), &mut lists));
    assert_eq!(lists.n, 0, "no candidate list");
    // Rule 902 (`/svc901/*`, index 901) is found and wins.
    let (a, n) = set.select(&view("/svc901/x", None));
    assert!(matches!(a, CompiledAction::Fixed { body, .. } if body == "901"));
    assert_eq!(n, 902);
}
