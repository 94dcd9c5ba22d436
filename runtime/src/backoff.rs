//! Exponential backoff: the one schedule every retry in the crate follows (token requests, the
//! write-back of a renewed session, the Redis subscription).

use std::time::Duration;

/// Waits that double from `first` up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            next: first,
            max,
        }
    }

    /// The next wait; each is twice the one before, up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next.min(self.max);
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Start again from the first wait (after a success).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The waits, endlessly: `take(n).sum()` is the time `n` retries wait in all.
impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_and_start_over_on_reset() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(500));
        let waits: Vec<_> = backoff.by_ref().take(5).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
        assert_eq!(Backoff::new(Duration::MAX, Duration::MAX).nth(3), Some(Duration::MAX));
    }
}
