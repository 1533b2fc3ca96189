//! The shared rate limiter on both backends, plus Redis-only cases (server clock, agreement
//! of the script with the memory backend, outages) and the rolling minute on a moved clock.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_only;
mod rolling;
mod suite;

keygate_tests::on_both_backends!(crate::suite:
    four_instances_hammering_one_subject_get_exactly_the_burst,
    the_refusal_says_exactly_when_to_retry,
    idle_subjects_leave_no_key,
    subjects_with_odd_characters_are_distinct_and_safe,
    limiters_with_different_names_do_not_share_budgets,
    four_instances_hammering_one_subject_get_exactly_the_window_limit,
    the_window_refusal_says_when_the_oldest_leaves,
    the_window_rolls_exactly,
    idle_windows_leave_no_key,
);
