//! Phone + SMS-code login on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod suite;

keygate_tests::on_both_backends!(crate::suite:
    happy_path_logs_in_and_creates_the_user,
    wrong_code_counts_and_the_right_one_still_works,
    expired_code_fails,
    a_code_works_once,
    five_wrong_tries_burn_the_code,
    resend_cooldown_and_daily_cap,
    concurrent_verifications_of_one_code_succeed_once,
    invalid_phones_are_rejected_before_the_store,
    a_failed_send_leaves_no_code,
    hashed_codes_hide_the_code,
);
