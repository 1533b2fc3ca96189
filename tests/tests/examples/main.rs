//! The black-box suite of the example applications: each example's binary runs as a child
//! process with a private Redis, and the HTTP contract of `docs/http-api.md` is driven
//! over real HTTP on loopback; each scenario names the section of the contract it checks. The same scenarios run against all four examples; the flagship
//! (axum) also serves the flash-sale and payment routes.
//!
//! The binaries are built by the suite itself on first use (`cargo build -p <example>`,
//! same target directory and profile), since `cargo test` does not build another
//! package's binaries.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod browser;
mod events;
mod faults;
mod flagship;
mod http;
mod launcher;
mod login;
mod near_cache;
mod rate_limit;
mod startup;

/// For each scenario `module::name` (an async fn taking the example's package name), one
/// test per example: `axum::name`, `actix::name`, `rocket::name`, `poem::name`.
macro_rules! on_every_example {
    ($($module:ident :: $scenario:ident),* $(,)?) => {
        on_every_example!(@one axum, "axum-login", $($module::$scenario),*);
        on_every_example!(@one actix, "actix-login", $($module::$scenario),*);
        on_every_example!(@one rocket, "rocket-login", $($module::$scenario),*);
        on_every_example!(@one poem, "poem-login", $($module::$scenario),*);
    };
    (@one $app:ident, $package:literal, $($module:ident :: $scenario:ident),*) => {
        mod $app {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    crate::$module::$scenario($package).await;
                }
            )*
        }
    };
}

on_every_example!(
    login::code_login_and_redis_layout,
    login::bad_bodies_are_400,
    login::wrong_codes_burn_the_code,
    login::token_transports_and_malformed_tokens,
    login::java_session_and_ttl_reset,
    login::logout_sessions_and_logout_all,
    events::the_event_stream_follows_the_session,
    events::shutdown_does_not_wait_for_open_streams,
    events::the_event_stream_ends_when_another_program_deletes_the_session,
    login::sessions_name_devices_and_end_one,
    login::cookie_transport_and_origin_check,
    login::secure_cookie_when_configured,
    login::metrics_are_scraped_with_the_admin_token,
    login::metrics_are_off_without_an_admin_token,
    login::unknown_routes_and_the_page,
    login::redis_outage_answers_503_and_recovers,
    rate_limit::the_fourth_request_of_a_minute_is_429,
    rate_limit::the_61st_operator_request_of_a_minute_is_429,
    rate_limit::trusted_proxies_name_the_client,
    rate_limit::an_untrusted_peer_cannot_name_the_client,
    rate_limit::ipv6_clients_of_one_64_share_a_budget,
    startup::embedded_backend_without_redis,
    startup::a_short_admin_token_refuses_to_start,
    startup::startup_failures_are_one_line,
    startup::tls_redis_failures_are_one_line,
    near_cache::warm_instance_sends_almost_no_commands,
    near_cache::changes_elsewhere_are_401_within_milliseconds,
    near_cache::no_200_for_sessions_lost_in_a_restart,
    near_cache::near_cache_has_no_effect_on_the_embedded_backend,
);

mod axum_flagship {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_count_orders_and_their_handling() {
        crate::flagship::metrics_count_orders_and_their_handling().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flash_sale_never_oversells() {
        crate::flagship::flash_sale_never_oversells().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn order_routes_answer_the_contract() {
        crate::flagship::order_routes_answer_the_contract().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pay_callbacks_process_exactly_once() {
        crate::flagship::pay_callbacks_process_exactly_once().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_pay_callbacks_change_nothing() {
        crate::flagship::refused_pay_callbacks_change_nothing().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn provider_callbacks_are_off_without_a_secret() {
        crate::flagship::provider_callbacks_are_off_without_a_secret().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_operator_route_needs_the_admin_token() {
        crate::flagship::the_operator_route_needs_the_admin_token().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_operator_route_is_off_without_an_admin_token() {
        crate::flagship::the_operator_route_is_off_without_an_admin_token().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pay_callbacks_wait_for_the_order_lock() {
        crate::flagship::pay_callbacks_wait_for_the_order_lock().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_a_redis_cluster() {
        crate::flagship::runs_on_a_redis_cluster().await;
    }
}

mod axum_faults {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_killed_and_restarted_under_load() {
        crate::faults::redis_killed_and_restarted_under_load().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frozen_redis_times_out_then_recovers() {
        crate::faults::frozen_redis_times_out_then_recovers().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connection_limit_is_503_then_recovers() {
        crate::faults::connection_limit_is_503_then_recovers().await;
    }
}

mod axum_near_cache {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_taking_turns_on_one_session() {
        crate::near_cache::instances_taking_turns_on_one_session("axum-login").await;
    }
}

mod axum_browser {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_login_page_works_in_a_real_browser() {
        crate::browser::the_login_page_works_in_a_real_browser().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn log_out_everywhere_reaches_the_other_browser_live() {
        crate::browser::log_out_everywhere_reaches_the_other_browser_live().await;
    }
}
