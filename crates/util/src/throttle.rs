//! A byte-rate limit for background reads (verify, scrub): the caller says
//! how many bytes it just read and is held back until its average rate
//! since the start is within the limit.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Throttle {
    /// Bytes per second; `None`: no limit.
    rate: Option<u64>,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    pub fn new(rate: Option<u64>) -> Throttle {
        Throttle {
            rate: rate.filter(|r| *r > 0),
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// How long to wait after `n` more bytes to stay within the rate.
    pub fn wait_after(&mut self, n: u64) -> Duration {
        self.bytes += n;
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        due.saturating_sub(self.start.elapsed())
    }

    /// Counts `n` bytes and sleeps (blocking) as the rate asks.
    pub fn take(&mut self, n: u64) {
        let d = self.wait_after(n);
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_to_the_rate() {
        let mut t = Throttle::new(Some(1000));
        // 500 bytes at 1000 B/s are due at 0.5 s.
        let d = t.wait_after(500);
        assert!(
            d > Duration::from_millis(400) && d <= Duration::from_millis(500),
            "{d:?}"
        );
        let mut none = Throttle::new(None);
        assert_eq!(none.wait_after(1 << 40), Duration::ZERO);
        let mut zero = Throttle::new(Some(0));
        assert_eq!(zero.wait_after(1 << 40), Duration::ZERO, "0 means no limit");
    }
}
