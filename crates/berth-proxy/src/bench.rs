//! Entry points for the criterion micro-benchmarks (`benches/selection.rs`): rule
//! matching and target selection without sockets. Not part of the stable API.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use berth_model::elb::{Listener, TargetGroup};
use berth_model::elb_attributes::TargetGroupAttributes;
use http::{HeaderMap, Method};

use crate::clock::Clock;
use crate::config::ProxyTarget;
use crate::error::ProxyError;
use crate::group::GroupRuntime;
use crate::group_settings::GroupSettings;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::rules::{RequestView, RuleSet};

fn runtime(tg: &TargetGroup) -> Result<Arc<GroupRuntime>, ProxyError> {
    let attributes =
        TargetGroupAttributes::parse(&tg.attributes).map_err(|source| ProxyError::Invalid {
            resource: "target group",
            name: tg.target_group_name.clone(),
            source,
        })?;
    Ok(GroupRuntime::new(
        &tg.target_group_arn,
        GroupSettings::from_model(tg, &attributes)?,
        &Metrics::new(&prometheus::Registry::new()),
        Notifier::new(),
        Clock::new(),
        None,
    ))
}

/// A listener's compiled rules.
pub struct Rules {
    rules: RuleSet,
}

impl Rules {
    /// Compiles `listener`'s rules; its actions may forward to `groups`.
    pub fn new(listener: &Listener, groups: &[TargetGroup]) -> Result<Rules, ProxyError> {
        let rts = groups
            .iter()
            .map(|g| Ok((g.target_group_arn.clone(), runtime(g)?)))
            .collect::<Result<Vec<_>, ProxyError>>()?;
        let lookup = |arn: &str| rts.iter().find(|(a, _)| a == arn).map(|(_, g)| g.clone());
        Ok(Rules {
            rules: RuleSet::compile(&listener.rules, &listener.default_actions, &lookup)?,
        })
    }

    /// How many rules were evaluated to find the request's action.
    pub fn evaluate(
        &self,
        host: &str,
        path: &str,
        query: Option<&str>,
        method: &Method,
        headers: &HeaderMap,
        source: IpAddr,
    ) -> usize {
        let view = RequestView {
            host,
            path,
            query,
            method,
            headers: crate::rules::ViewHeaders::Map(headers),
            source,
        };
        self.rules.select(&view).1
    }
}

/// A target group with `n` routable targets (health checks off).
pub struct Targets {
    group: Arc<GroupRuntime>,
}

impl Targets {
    /// Must be called inside a tokio runtime.
    pub fn new(tg: &TargetGroup, n: u16) -> Result<Targets, ProxyError> {
        let mut tg = tg.clone();
        tg.health_check_enabled = false;
        let group = runtime(&tg)?;
        let targets: Vec<ProxyTarget> = (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080));
                ProxyTarget {
                    id: addr.ip().to_string(),
                    port: 8080,
                    addr,
                    draining: false,
                    mesh_hop: None,
                }
            })
            .collect();
        let settings = (**group.settings.load()).clone();
        group.update(settings, &targets);
        Ok(Targets { group })
    }

    /// Picks a target and counts the request in and out again.
    pub fn pick(&self) -> Option<SocketAddr> {
        self.group.pick(&[], None).map(|g| g.target().addr)
    }
}
