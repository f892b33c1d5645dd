//! The configuration the control plane hands the proxy and the statuses it hands back:
//! the contract types of [`berth_model::dataplane`], re-exported; and the translation of
//! a [`ProxyError`] into the contract's [`ConfigRefusal`] and [`CertificateRefusal`].
//!
//! What it does not do: define those types (the model does, so the control plane can
//! build a configuration without knowing the proxy).

pub use berth_model::dataplane::{
    CertificateRefusal, ConfigRefusal, ProxyConfig, ProxyTarget, TargetGroupConfig, TargetStatus,
};

use berth_model::elb::LoadBalancer;

use crate::error::ProxyError;

impl ProxyError {
    /// The contract's view of this refusal of a configuration serving `lbs`: the load
    /// balancer at fault, when the error names one (by its name, its ARN or a listener's
    /// ARN), or the mesh listener at fault (by port), and why.
    pub fn refusal(&self, lbs: &[LoadBalancer]) -> ConfigRefusal {
        let by_listener = |arn: &str| {
            lbs.iter()
                .find(|lb| lb.listeners.iter().any(|l| l.listener_arn == arn))
        };
        let culprit = match self {
            ProxyError::Bind { listener_arn, .. }
            | ProxyError::Unsupported { listener_arn, .. } => by_listener(listener_arn),
            ProxyError::Invalid {
                resource: "load balancer",
                name,
                ..
            } => lbs.iter().find(|lb| &lb.load_balancer_name == name),
            ProxyError::Config { what, .. } => lbs.iter().find(|lb| {
                what.contains(&lb.load_balancer_arn)
                    || lb.listeners.iter().any(|l| what.contains(&l.listener_arn))
            }),
            _ => None,
        };
        let mesh_listener_port = match self {
            ProxyError::MeshBind { port, .. } | ProxyError::Mesh { port, .. } => Some(*port),
            _ => None,
        };
        ConfigRefusal {
            load_balancer_name: culprit.map(|lb| lb.load_balancer_name.clone()),
            mesh_listener_port,
            reason: self.to_string(),
        }
    }

    /// The contract's view of a certificate of `listener_arn` that does not load.
    pub fn certificate_refusal(&self, listener_arn: &str) -> CertificateRefusal {
        CertificateRefusal {
            listener_arn: listener_arn.to_string(),
            reason: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::stack::Stack;

    fn lbs() -> Vec<LoadBalancer> {
        let mut stack = Stack::from_yaml(
            "loadBalancers:\n  - loadBalancerName: a\n    listeners:\n      - port: 80\n        protocol: HTTP\n        defaultActions: [{type: fixed-response, fixedResponseConfig: {statusCode: \"200\"}}]\n  - loadBalancerName: b\n    listeners:\n      - port: 81\n        protocol: HTTP\n        defaultActions: [{type: fixed-response, fixedResponseConfig: {statusCode: \"200\"}}]\n",
        )
        .unwrap();
        for lb in &mut stack.load_balancers {
            lb.load_balancer_arn = format!("arn:lb/{}", lb.load_balancer_name);
            for l in &mut lb.listeners {
                l.listener_arn = format!("arn:listener/{}/{}", lb.load_balancer_name, l.port);
            }
        }
        stack.load_balancers
    }

    #[test]
    fn a_bind_failure_blames_the_listeners_load_balancer() {
        let e = ProxyError::Bind {
            listener_arn: "arn:listener/b/81".into(),
            addr: "0.0.0.0:81".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let r = e.refusal(&lbs());
        assert_eq!(r.load_balancer_name.as_deref(), Some("b"));
        assert_eq!(r.reason, e.to_string());
    }

    #[test]
    fn a_config_error_naming_an_arn_blames_its_load_balancer() {
        let e = ProxyError::Config {
            what: "listener arn:listener/a/80 certificate".into(),
            message: "no file".into(),
        };
        assert_eq!(e.refusal(&lbs()).load_balancer_name.as_deref(), Some("a"));
        let e = ProxyError::Config {
            what: "action of arn:lb/b".into(),
            message: "unknown target group".into(),
        };
        assert_eq!(e.refusal(&lbs()).load_balancer_name.as_deref(), Some("b"));
    }

    #[test]
    fn an_error_naming_no_load_balancer_blames_none() {
        let r = ProxyError::ShutDown.refusal(&lbs());
        assert_eq!(r.load_balancer_name, None);
        assert_eq!(r.reason, "the proxy is shut down");
        let e = ProxyError::Config {
            what: "target group arn:tg/x".into(),
            message: "bad".into(),
        };
        assert_eq!(e.refusal(&lbs()).load_balancer_name, None);
    }

    #[test]
    fn a_mesh_listener_failure_names_its_port_and_no_load_balancer() {
        let e = ProxyError::MeshBind {
            port: 8080,
            addr: "127.0.0.1:8080".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let r = e.refusal(&lbs());
        assert_eq!(r.mesh_listener_port, Some(8080));
        assert_eq!(r.load_balancer_name, None);
        assert!(r.reason.contains("port 8080"), "{}", r.reason);
        let e = ProxyError::Mesh {
            port: 9090,
            message: "route orders: target group arn:tg is not in the configuration".into(),
        };
        assert_eq!(e.refusal(&lbs()).mesh_listener_port, Some(9090));
    }

    #[test]
    fn a_certificate_refusal_keeps_the_message() {
        let e = ProxyError::Config {
            what: "listener l certificate".into(),
            message: "/x.pem: not found".into(),
        };
        let r = e.certificate_refusal("l");
        assert_eq!(r.listener_arn, "l");
        assert_eq!(r.to_string(), "listener l certificate: /x.pem: not found");
    }
}
