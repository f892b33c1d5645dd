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

    /// Microseconds since the epoch at an instant the caller read, so one reading of
    /// the clock serves two uses.
    #[inline]
    pub(crate) fn us_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(*self.epoch).as_micros() as u64
    }

    /// The instant of a [`Clock::now_ms`] reading (to the millisecond, never later).
    #[inline]
    pub(crate) fn instant_at_ms(&self, ms: u64) -> Instant {
        *self.epoch + std::time::Duration::from_millis(ms.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    #[tokio::test(start_paused = true)]
    async fn readings_convert_both_ways() {
        let clock = Clock::new();
        tokio::time::advance(Duration::from_micros(2_500_700)).await;
        let now = tokio::time::Instant::now();
        assert_eq!(clock.us_at(now), 2_500_700);
        let ms = clock.now_ms();
        assert_eq!(ms, 2_501, "milliseconds since the epoch, plus one");
        let at = clock.instant_at_ms(ms);
        assert!(at <= now && now - at < Duration::from_millis(1));
    }
}
