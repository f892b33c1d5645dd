//! berth-aws's decoding of the ELBv2 query protocol: an arbitrary form body goes
//! through protocol recognition and into the members the operations read (scalars,
//! integers, booleans, lists, structure lists, listener actions and rule conditions,
//! target group attributes). Nothing panics; a list never has more items than the form
//! has pairs.
#![no_main]

use berth_aws::elbv2::{actions, form::Params, target_groups};
use berth_aws::protocol::{recognise, Recognised};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let headers = http::HeaderMap::new();
    let Recognised::Query { params } = recognise(&headers, data) else {
        return;
    };
    let p = Params::new(&params);
    let _ = p.req("Action");
    for name in ["Port", "Priority", "PageSize", "HealthCheckPort", "Weight"] {
        let _ = p.int(name);
    }
    let _ = p.bool("Enabled");
    for prefix in ["Names", "ListenerArns", "TargetGroupArns", "Subnets"] {
        assert!(p.list(prefix).len() <= params.len());
    }
    let targets = p.structs("Targets");
    assert!(targets.len() <= params.len());
    for t in &targets {
        let _ = (t.req("Id"), t.int("Port"));
    }
    for prefix in ["DefaultActions", "Actions"] {
        let _ = actions::actions_from(&p, prefix);
    }
    let _ = actions::conditions_from(&p);
    let mut doc = serde_json::json!({});
    let _ = target_groups::set_attributes(&p, &mut doc);
    let _ = p.sub("Matcher").get("HttpCode");
});
