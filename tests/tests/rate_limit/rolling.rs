//! The sliding window on a clock the test moves: the rolling minute itself, which a real
//! server's clock would take a minute to show.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keygate::MemoryStore;
use keygate::rate_limit::{Clock, RateLimiter, Window};

/// A rolling minute on a clock the test moves (the memory backend): after N at t0 nothing
/// goes through until t0 + 60 s, then exactly as many as have left the window, and every
/// refusal names the exact wait, rounded up in `Retry-After`.
#[tokio::test]
async fn a_rolling_minute_admits_exactly_what_left_it() {
    const SEC: u64 = 1_000_000;
    let now = Arc::new(AtomicU64::new(1_000_000 * SEC));
    let clock = {
        let now = now.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    };
    let limiter = RateLimiter::new(MemoryStore::new(), "rolling", Window::per_minute(4))
        .unwrap()
        .with_clock(clock);
    let t0 = now.load(Ordering::SeqCst);
    let at = |offset: u64| now.store(t0 + offset, Ordering::SeqCst);
    // Two at t0, two at t0 + 10 s: the minute is full.
    for offset in [0, 0, 10 * SEC, 10 * SEC] {
        at(offset);
        assert!(limiter.check("s").await.unwrap().allowed);
    }
    for offset in [10 * SEC, 30 * SEC, 60 * SEC - 1] {
        at(offset);
        let refused = limiter.check("s").await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(
            refused.retry_after,
            Duration::from_micros(60 * SEC - offset)
        );
    }
    at(59 * SEC + 500_000);
    let refused = limiter.check("s").await.unwrap();
    assert!(refused.headers().contains(&("Retry-After", "1".to_owned())));
    // At t0 + 60 s the two of t0 have left: exactly two more.
    at(60 * SEC);
    assert_eq!(limiter.check("s").await.unwrap().remaining, 1);
    assert_eq!(limiter.check("s").await.unwrap().remaining, 0);
    let refused = limiter.check("s").await.unwrap();
    assert!(!refused.allowed);
    // Next to leave: the two of t0 + 10 s, at t0 + 70 s.
    assert_eq!(refused.retry_after, Duration::from_secs(10));
    at(70 * SEC);
    assert!(limiter.check("s").await.unwrap().allowed);
    assert!(limiter.check("s").await.unwrap().allowed);
    assert!(!limiter.check("s").await.unwrap().allowed);
}
