//! The messages of the node link: how a `berth agent` on another machine joins a cluster
//! and talks to its control plane over the network (HTTP/2 over mutual TLS).
//!
//! - [`JoinRequest`] / [`NodeCredentials`]: an agent proves it holds the cluster's join
//!   secret once and receives its own certificate (its node identity, signed by the
//!   cluster's authority) and the authority's certificate; every later call is made with
//!   that certificate, which names the container instance it may speak for.
//! - [`ChangeNotice`]: one line of the stream an agent holds open; the control plane
//!   writes one whenever something the agent may care about changed, and a heartbeat line
//!   in between, so a silent connection is a dead one on both sides.
//!
//! Every other message of the link is a contract type already: a
//! [`ContainerInstance`](crate::ecs::ContainerInstance) registered, the
//! [`Task`](crate::ecs::Task)s placed on it, their
//! [`TaskDefinition`](crate::ecs::TaskDefinition)s and
//! [`TaskStateChange`](crate::agent::TaskStateChange)s.
//!
//! What it does not do: transport (berth-node-link does), or issue certificates (the
//! control plane's authority does).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The paths of the control plane's side of the link.
pub mod paths {
    /// POST [`JoinRequest`](super::JoinRequest) → [`NodeCredentials`](super::NodeCredentials)
    /// (the only call made without a client certificate).
    pub const JOIN: &str = "/node/v1/join";
    /// POST (no body) → a fresh [`NodeCredentials`](super::NodeCredentials) for the
    /// calling node's identity.
    pub const RENEW: &str = "/node/v1/renew";
    /// POST ContainerInstance → ContainerInstance as stored.
    pub const INSTANCES: &str = "/node/v1/instances";
    /// GET `?containerInstanceArn=` → the tasks placed on the instance.
    pub const TASKS: &str = "/node/v1/tasks";
    /// GET `?taskDefinition=` → the task definition (404 when unknown).
    pub const TASK_DEFINITION: &str = "/node/v1/task-definition";
    /// GET `?taskArn=` → the task's `TaskSecrets` (a task placed on the caller's
    /// instance only).
    pub const TASK_SECRETS: &str = "/node/v1/task-secrets";
    /// POST TaskStateChange → Task as stored (404 when unknown).
    pub const TASK_STATE_CHANGES: &str = "/node/v1/task-state-changes";
    /// GET `?containerInstanceArn=` → the node's
    /// [`ProxyConfig`](crate::dataplane::ProxyConfig): the load balancers whose
    /// `berth.nodes` choose the instance, and their target groups; the mesh's target
    /// groups and client-alias listeners; the node's mutual TLS (its certificates and
    /// keys, the trust, its inbound endpoints and callers).
    pub const PROXY_CONFIG: &str = "/node/v1/proxy-config";
    /// GET `?containerInstanceArn=` → the
    /// [`DiscoveryRecords`](crate::discovery::DiscoveryRecords) the node's DNS server
    /// answers.
    pub const DISCOVERY_RECORDS: &str = "/node/v1/discovery-records";
    /// GET `?containerInstanceArn=` → a stream of [`ChangeNotice`](super::ChangeNotice)
    /// lines (newline-delimited JSON) for as long as the agent holds it.
    pub const CHANGES: &str = "/node/v1/changes";
    /// POST [`TaskCredentialsRequest`](super::TaskCredentialsRequest) →
    /// [`TaskRoleCredentials`](crate::agent::TaskRoleCredentials) of a task on the
    /// calling node whose definition names a `taskRoleArn`.
    pub const TASK_CREDENTIALS: &str = "/node/v1/task-credentials";
}

/// Which task's role credentials a node asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCredentialsRequest {
    pub container_instance_arn: String,
    pub task_arn: String,
}

/// The paths of a node's API, which the control plane calls (with its own certificate)
/// to ask about the tasks the node runs.
pub mod node_paths {
    /// GET `?taskArn=` → the task's `TaskUsage`.
    pub const USAGE: &str = "/node/v1/task/usage";
    /// GET `?taskArn=&container=&follow=` → the container's output, streamed.
    pub const LOGS: &str = "/node/v1/task/logs";
    /// POST [`NodeExecRequest`](super::NodeExecRequest) → the command's captured output.
    pub const EXEC: &str = "/node/v1/task/exec";
    /// POST, a streaming body: one line of [`NodeExecSessionRequest`](super::NodeExecSessionRequest)
    /// JSON, then [`InputFrame`](crate::exec_stream::InputFrame)s → a streaming body of
    /// [`OutputFrame`](crate::exec_stream::OutputFrame)s, the container's name in the
    /// [`EXEC_CONTAINER_HEADER`](super::EXEC_CONTAINER_HEADER) header. One HTTP/2 stream
    /// carries both directions.
    pub const EXEC_SESSION: &str = "/node/v1/task/exec-session";
}

/// A command the control plane asks a node to run in a task's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExecRequest {
    pub task_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub command: Vec<String>,
    pub timeout_seconds: u64,
}

/// The response header naming the container an exec session runs in.
pub const EXEC_CONTAINER_HEADER: &str = "berth-exec-container";

/// An interactive command the control plane asks a node to start in a task's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExecSessionRequest {
    pub task_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    /// The terminal's size at the start, as (rows, columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<(u16, u16)>,
}

/// An agent asking to join a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The secret part of the join token.
    pub secret: String,
    /// The cluster the agent's instance joins.
    pub cluster: String,
    /// The instance id the agent keeps in its data directory (`i-` and 17 hex digits).
    pub instance_id: String,
}

/// What a node holds to call its control plane: its certificate and key (identity
/// `spiffe://<cluster>/ns/_berth/sa/node-<instance id>`), and the certificate of the
/// authority that signed it, which the control plane's own certificate chains to.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCredentials {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub authority_pem: String,
    /// When the certificate stops being valid.
    pub not_after: Timestamp,
    /// When to ask for the next one (half-way through its lifetime).
    pub renew_at: Timestamp,
}

impl std::fmt::Debug for NodeCredentials {
    /// Everything but the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<redacted>")
            .field("not_after", &self.not_after)
            .field("renew_at", &self.renew_at)
            .finish()
    }
}

/// One line of the change stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotice {
    /// Grows whenever the control plane's state changed; a heartbeat repeats the last.
    pub revision: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_key() {
        let c = NodeCredentials {
            certificate_pem: "CERT".into(),
            private_key_pem: "SECRET KEY".into(),
            authority_pem: "CA".into(),
            not_after: 2.0,
            renew_at: 1.0,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET KEY"), "{shown}");
        assert!(shown.contains("CERT"), "{shown}");
    }

    #[test]
    fn messages_are_camel_case() {
        let j = serde_json::to_value(JoinRequest {
            secret: "s".into(),
            cluster: "default".into(),
            instance_id: "i-0".into(),
        })
        .unwrap();
        assert_eq!(j["instanceId"], "i-0");
        let n: ChangeNotice = serde_json::from_str(r#"{"revision":7}"#).unwrap();
        assert_eq!(n.revision, 7);
    }
}
