//! Flash sales on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod delivery;
mod redis_only;
mod suite;

keygate_tests::on_both_backends!(crate::suite:
    never_oversells_never_sells_twice,
    the_consumer_sees_every_order_once_acked,
    a_crashed_consumers_orders_are_reclaimed,
    failing_orders_are_retried_then_dead_lettered,
    order_ids_are_unique_and_increasing,
    the_sale_window_is_respected,
    unknown_vouchers_are_reported_not_errors,
    shutdown_finishes_the_order_in_hand,
    shutdown_during_a_blocking_read_is_prompt,
    a_stock_the_script_cannot_hold_is_refused,
    status_reports_stock_buyers_streams_and_groups,
    dead_letters_are_replayed_exactly_once_or_dropped,
);
