//! Timestamps: seconds since the Unix epoch with a fraction, as the ECS API returns them.

/// Seconds since the Unix epoch.
pub type Timestamp = f64;

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
