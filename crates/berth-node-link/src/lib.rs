//! berth-node-link: the network between a control plane and the agents of other
//! machines (the EC2 launch type's container instances): HTTP/2 over mutual TLS, the
//! messages of `berth_model::node_link` and the agent contract.
//!
//! An agent joins once with a token (`berthjoin1.<authority fingerprint>.<secret>`,
//! [`token`]) and receives a certificate for its node identity; from then on it calls
//! with that certificate, and the control plane lets it speak only for its own
//! container instance. Desired state reaches the agent as a stream of change notices
//! it holds open; the agent then reads what it needs (the tasks placed on its instance
//! and their task definitions, and the configuration of the load balancers its node
//! serves) and reports task state changes. Either side may restart
//! or lose the connection at any moment: every call is idempotent, the agent re-reports
//! what it runs on reconnect, and a dropped stream marks the instance disconnected only
//! after [`control_side::DISCONNECT_AFTER`].
//!
//! The other direction, for questions about a node's tasks (logs, resource use, exec),
//! goes to the node's API, which the agent serves with its certificate to the control
//! plane's only.
//!
//! What it does not do: run tasks (berth-agent), decide where they run or store
//! anything (berth-control). The binary starts one side or the other.
//!
//! Layout:
//! - [`token`]: the join token.
//! - [`tls`]: both sides' rustls configurations and the peer's identity.
//! - [`channel`]: the agent's one HTTP/2 connection to the control plane.
//! - [`control_side`]: the control plane's HTTPS server for agents.
//! - [`node_api`]: a node's API, where the control plane asks an agent about its tasks.
//! - [`remote_nodes`]: the control plane's `TaskNodes` for tasks on remote instances.
//! - [`agent_side`]: joining, the saved credentials, and [`agent_side::RemoteControl`],
//!   the agent's `AgentApi` over the link.

pub mod agent_side;
pub mod channel;
pub mod control_side;
pub mod node_api;
pub mod remote_nodes;
pub mod tls;
pub mod token;

pub use agent_side::{LinkSettings, RemoteControl};
pub use control_side::{serve, ControlIdentity, ControlLink};
pub use token::JoinToken;
