//! A cheap monotonic clock shared by the proxy: milliseconds and microseconds since the
//! proxy started, on tokio's clock so tests can pause and advance it.

use std::sync::Arc;

use tokio::time::Instant;

#[derive(Clone, Debug)]
pub(crate) struct Clock {
    epoch: Arc<Instant>,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Arc::new(Instant::now()),
        }
    }

    /// Milliseconds since the epoch, plus one so that 0 can mean "never".
    #[inline]
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    #[inline]
    pub(crate) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}
