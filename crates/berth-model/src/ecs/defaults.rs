//! ECS's defaults as named constants (ECS's own unless a reason is written), and the
//! serde helpers the resources share.

/// `stopTimeout` when a container does not set one (ECS: 30 s).
pub const DEFAULT_STOP_TIMEOUT_SECONDS: u32 = 30;
/// Container health check defaults and ranges (ECS task definition parameters).
pub const DEFAULT_HEALTH_INTERVAL: u32 = 30;
pub const DEFAULT_HEALTH_TIMEOUT: u32 = 5;
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
pub const DEFAULT_MAXIMUM_PERCENT: u32 = 200;
pub const DEFAULT_MINIMUM_HEALTHY_PERCENT: u32 = 100;
/// Ports a task definition may not claim as host ports (ECS reserves them on instances).
pub const RESERVED_PORTS: &[u32] = &[22, 2375, 2376, 51678, 51679, 51680];

/// Reads `null` as the empty value, as ECS does for lists and maps: task definitions
/// copied from the ECS console write `"mountPoints": null` and the like.
pub(super) fn null_as_empty<'de, D, T>(de: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(de)?.unwrap_or_default())
}

pub(super) fn d_true() -> bool {
    true
}
