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

/// A script that fails on what it finds (here a daily counter that is not a number, as a
/// stock above `i64::MAX` did for flash sales) is not an outage: 500 and a log line, not
/// 503 "backend unavailable".
#[tokio::test]
async fn a_deterministic_script_failure_is_500_not_503() {
    use keygate::code::{CodeConfig, Codes};
    use keygate::{RedisOptions, RedisStore};
    use keygate_tests::RedisServer;
    use keygate_tests::fixtures::CapturingSender;

    let server = RedisServer::start();
    let store = RedisStore::connect_with(RedisOptions::new(server.url()))
        .await
        .unwrap();
    let codes = Codes::new(store, CapturingSender::default(), CodeConfig::new()).unwrap();
    let phone = codes.phone("13800138000").unwrap();
    let daily = "keygate:code-daily:{login:code:13800138000}";
    let _: () = server.query(redis::cmd("HSET").arg(daily).arg("n").arg("1"));
    let error = codes.send(&phone).await.unwrap_err();
    assert_eq!(error.status(), 500, "{error}");
    assert!(
        matches!(
            error,
            keygate::code::CodeError::Core(keygate::Error::Script(_))
        ),
        "{error:?}"
    );
}
