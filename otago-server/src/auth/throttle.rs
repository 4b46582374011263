//! Throttling of failed authentications per client address, and rate-limited warnings about
//! them.
//!
//! Each address (an IPv6 address by its /64, which one client usually holds whole) has a
//! budget of `burst` failures that refills by one every `interval` (a GCRA token bucket:
//! one timestamp per address). Once the budget is spent every authenticated request from the
//! address gets 429 until it refills, whether its token is right or not, so guessing stays
//! slow. The table has a fixed size; when full, an address whose budget refilled is dropped
//! first, else the one with the most budget left, so a flood of new addresses cannot
//! unthrottle the worst one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// At most this many addresses are tracked.
const CAPACITY: usize = 4096;
/// At most this many warnings are logged per minute; the rest are counted.
const WARNINGS_PER_MINUTE: u32 = 10;
const MINUTE_MS: i64 = 60_000;

/// The client address a budget belongs to.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Failure budgets per address.
#[derive(Debug)]
pub(crate) struct Throttle {
    burst: i64,
    interval_ms: i64,
    /// Per address, when its budget is whole again (ms since the epoch); absent or past: whole.
    full_at: Mutex<HashMap<IpAddr, i64>>,
    warnings: Mutex<Warnings>,
}

#[derive(Debug, Default)]
struct Warnings {
    window_start_ms: i64,
    logged: u32,
    suppressed: u64,
}

impl Throttle {
    /// `burst` failures at once, then one per `interval`.
    pub(crate) fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst: i64::from(burst.max(1)),
            interval_ms: i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            full_at: Mutex::new(HashMap::new()),
            warnings: Mutex::new(Warnings::default()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, i64>> {
        self.full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `None` if `client` may try to authenticate at `now_ms`, else how long it must wait.
    pub(crate) fn check(&self, client: IpAddr, now_ms: i64) -> Option<Duration> {
        let full_at = *self.table().get(&client)?;
        let spent = full_at - now_ms;
        let excess = spent - (self.burst - 1) * self.interval_ms;
        (excess > 0).then(|| Duration::from_millis(u64::try_from(excess).unwrap_or(u64::MAX)))
    }

    /// Spends one failure of `client`'s budget at `now_ms`.
    pub(crate) fn failed(&self, client: IpAddr, now_ms: i64) {
        let mut table = self.table();
        if table.len() >= CAPACITY && !table.contains_key(&client) {
            table.retain(|_, full_at| *full_at > now_ms);
            if table.len() >= CAPACITY
                && let Some(most_left) = table
                    .iter()
                    .min_by_key(|(_, full_at)| **full_at)
                    .map(|(ip, _)| *ip)
            {
                table.remove(&most_left);
            }
        }
        let full_at = table.entry(client).or_insert(now_ms);
        // Never further ahead than the whole budget: waiting it out always clears an address.
        *full_at =
            ((*full_at).max(now_ms) + self.interval_ms).min(now_ms + self.burst * self.interval_ms);
    }

    /// Logs a failed authentication at WARN, at most [`WARNINGS_PER_MINUTE`] times a minute;
    /// the first line after a quiet spell says how many were left out.
    pub(crate) fn warn(&self, client: IpAddr, code: &str, now_ms: i64) {
        if let Some(suppressed) = self.may_warn(now_ms) {
            tracing::warn!(client = %client, reason = code, suppressed, "authentication failed");
        }
    }

    /// `Some(how many warnings were left out since the last one)` if one may be logged now.
    fn may_warn(&self, now_ms: i64) -> Option<u64> {
        let mut warnings = self
            .warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now_ms - warnings.window_start_ms >= MINUTE_MS {
            warnings.window_start_ms = now_ms;
            warnings.logged = 0;
        }
        if warnings.logged >= WARNINGS_PER_MINUTE {
            warnings.suppressed += 1;
            return None;
        }
        warnings.logged += 1;
        Some(std::mem::take(&mut warnings.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_spent_budget_blocks_until_it_refills() {
        let throttle = Throttle::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(throttle.check(A, 0), None);
            throttle.failed(A, 0);
        }
        assert_eq!(throttle.check(A, 0), Some(Duration::from_secs(10)));
        assert_eq!(throttle.check(B, 0), None);
        assert_eq!(throttle.check(A, 4_000), Some(Duration::from_secs(6)));
        assert_eq!(throttle.check(A, 10_000), None);
        throttle.failed(A, 10_000);
        assert!(throttle.check(A, 10_000).is_some());
        // However many failures pile up, the whole budget is back after burst * interval.
        for _ in 0..100 {
            throttle.failed(A, 10_000);
        }
        assert_eq!(throttle.check(A, 40_000), None);
    }

    #[test]
    fn a_full_table_keeps_the_most_throttled() {
        let throttle = Throttle::new(2, Duration::from_secs(1));
        throttle.failed(A, 0);
        throttle.failed(A, 0);
        for i in 0..CAPACITY as u32 {
            throttle.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), 0);
        }
        assert!(throttle.table().len() <= CAPACITY);
        assert!(throttle.check(A, 0).is_some());
    }

    #[test]
    fn warnings_are_limited_per_minute_and_count_what_was_left_out() {
        let throttle = Throttle::new(1, Duration::from_secs(1));
        let start = 1_000_000;
        for _ in 0..WARNINGS_PER_MINUTE {
            assert_eq!(throttle.may_warn(start), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(throttle.may_warn(start + 1), None);
        }
        assert_eq!(throttle.may_warn(start + MINUTE_MS), Some(5));
        assert_eq!(throttle.may_warn(start + MINUTE_MS), Some(0));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let two: IpAddr = "2001:db8::2:3".parse().unwrap();
        assert_eq!(client_key(one), client_key(two));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), A);
    }
}
