//! The task's network mode, which the container members allowed in a task depend on.

use serde::{Deserialize, Serialize};

/// `networkMode`: `bridge`, `host`, `awsvpc` or `none`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Bridge,
    Host,
    Awsvpc,
    None,
}

impl NetworkMode {
    pub const ALL: [NetworkMode; 4] = [
        NetworkMode::Bridge,
        NetworkMode::Host,
        NetworkMode::Awsvpc,
        NetworkMode::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
            NetworkMode::Awsvpc => "awsvpc",
            NetworkMode::None => "none",
        }
    }
}
