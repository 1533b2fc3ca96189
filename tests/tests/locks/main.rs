//! The distributed lock on both backends, plus Redis-only failure cases.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_only;
mod suite;

keygate_tests::on_both_backends!(crate::suite:
    mutual_exclusion_and_increasing_fences,
    a_paused_holder_loses_the_lock_and_its_release_is_refused,
    try_acquire_on_a_held_lock_fails_fast,
    waiters_are_woken_by_the_release_not_the_poll,
    names_with_odd_characters_are_distinct_and_safe,
    a_dropped_guard_releases_in_the_background,
    with_lock_runs_the_work_and_releases,
    without_renewal_the_loss_is_reported_before_the_lease_ends,
    fence_keys_expire_and_fences_keep_increasing,
    status_shows_whether_held_the_lease_left_and_the_fence,
);
