//! GCRA (generic cell rate algorithm): `rate` per `period`, at most `burst` at once.

use std::time::Duration;

use super::{LimitReply, micros};
use crate::error::{Error, Result};
use crate::ttl::MAX_TTL;

/// How many requests a subject may make: `rate` per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    rate: u32,
    period: Duration,
    burst: u32,
}

impl Quota {
    /// `rate` per `period`; the burst is `rate` (the whole budget may be used at once).
    pub fn new(rate: u32, period: Duration) -> Self {
        Self {
            rate,
            period,
            burst: rate,
        }
    }

    /// `rate` per second, burst `rate`.
    pub fn per_second(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(1))
    }

    /// `rate` per minute, burst `rate`.
    pub fn per_minute(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(60))
    }

    /// `rate` per hour, burst `rate`.
    pub fn per_hour(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(3600))
    }

    /// At most `burst` requests at once (at least 1).
    pub fn with_burst(self, burst: u32) -> Self {
        Self { burst, ..self }
    }

    /// Requests per period.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Refuses `rate` 0, a zero period or one above [`MAX_TTL`], `burst` 0, and a
    /// period shorter than `rate` microseconds.
    pub fn validate(&self) -> Result<()> {
        if self.rate == 0 {
            return Err(Error::Config("rate limit: rate must be positive".into()));
        }
        crate::ttl::check_ttl("rate limit period", self.period)?;
        if self.burst == 0 {
            return Err(Error::Config("rate limit: burst must be at least 1".into()));
        }
        let params = self.params();
        if params.interval_us == 0 {
            return Err(Error::Config(
                "rate limit: more than one request per microsecond".into(),
            ));
        }
        if params.tolerance_us > micros(MAX_TTL) {
            return Err(Error::Config(
                "rate limit: burst × period / rate is beyond the longest expiry keygate accepts"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The GCRA parameters of this quota.
    pub fn params(&self) -> GcraParams {
        let interval_us = micros(self.period) / u64::from(self.rate.max(1));
        GcraParams {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(self.burst)),
        }
    }
}

/// The integers a GCRA decision works on, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcraParams {
    /// The emission interval: `period / rate`.
    pub interval_us: u64,
    /// How far ahead of now the theoretical arrival time may run: `interval × burst`.
    pub tolerance_us: u64,
}

/// One GCRA decision: given the stored theoretical arrival time (`None`: no key) and the
/// time now, the reply and the TAT to store (`None`: leave the key as it is). The Redis
/// script computes exactly this, on the same integers.
pub fn gcra(stored_tat: Option<u64>, now_us: u64, params: GcraParams) -> (LimitReply, Option<u64>) {
    let tat = stored_tat.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(params.interval_us);
    let allow_at = new_tat.saturating_sub(params.tolerance_us);
    if allow_at > now_us {
        let reply = LimitReply {
            allowed: false,
            remaining: 0,
            retry_after_us: allow_at - now_us,
            reset_us: tat - now_us,
            now_us,
        };
        return (reply, None);
    }
    let ahead = new_tat - now_us;
    let reply = LimitReply {
        allowed: true,
        remaining: params.tolerance_us.saturating_sub(ahead) / params.interval_us.max(1),
        retry_after_us: 0,
        reset_us: ahead,
        now_us,
    };
    (reply, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let params = Quota::per_minute(3).params();
        assert_eq!(params.interval_us, 20_000_000);
        let mut tat = None;
        let t0 = 1_000_000_000;
        for left in [2, 1, 0] {
            let (reply, new) = gcra(tat, t0, params);
            assert!(reply.allowed);
            assert_eq!(reply.remaining, left);
            tat = new;
        }
        let (reply, new) = gcra(tat, t0 + 1, params);
        assert!(!reply.allowed);
        assert_eq!(new, None);
        assert_eq!(reply.retry_after_us, 20_000_000 - 1);
        assert_eq!(reply.reset_us, 60_000_000 - 1);
        let (reply, _) = gcra(tat, t0 + 20_000_000, params);
        assert!(reply.allowed);
    }

    #[test]
    fn quotas_are_validated() {
        assert!(Quota::per_minute(0).validate().is_err());
        assert!(Quota::per_minute(3).with_burst(0).validate().is_err());
        assert!(Quota::new(1, Duration::ZERO).validate().is_err());
        assert!(
            Quota::new(1, MAX_TTL + Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(Quota::new(1, MAX_TTL).with_burst(2).validate().is_err());
        assert!(Quota::per_minute(30).with_burst(10).validate().is_ok());
    }
}
