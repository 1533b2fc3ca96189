//! Redis-specific checks: layouts byte for byte, round trips, outages.
