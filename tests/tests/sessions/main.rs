//! The session conformance suite, run against both backends, plus Redis-only checks of the
//! layouts, round trips and outages.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod conformance;
mod devices;
mod edges;
mod events;
mod population;
mod redis_only;
mod support;

keygate_tests::on_both_backends!(crate::conformance:
    create_then_load,
    sliding_refresh_and_idle_expiry,
    absolute_lifetime_ends_an_active_session,
    replace_keeps_data_fresh_and_never_resurrects,
    destroy_races_never_resurrect,
    hash_updates_merge_fields,
    json_updates_detect_conflicts,
    destroy_ends_one_session,
    list_and_destroy_all,
    cap_evicts_the_oldest,
    hashed_keys_mode,
    malformed_tokens_are_rejected_before_the_store,
    corrupt_data_is_no_session,
    concurrent_creates_and_loads,
);

mod edge_cases {
    keygate_tests::on_both_backends!(crate::edges:
    missing_deadline_key_ends_the_session,
    create_racing_with_list_stays_indexed,
    create_racing_with_destroy_all_stays_indexed,
    index_work_per_call_is_bounded,
    create_prunes_ended_sessions_from_the_index,
        hash_update_removing_every_field_is_refused,
        logout_everywhere_during_rotation_ends_the_session,
        listing_during_rotation_never_hides_a_live_session,
        rotating_a_session_without_its_deadline_key_gives_nothing,
        missing_companion_ends_a_session_under_login_limits,
        plain_sessions_under_login_limits_slide_without_end,
    );
}

mod devices_and_rotation {
    keygate_tests::on_both_backends!(crate::devices:
        session_ids_are_stable_and_unlinkable_to_tokens,
        sessions_show_device_and_last_use,
        end_session_touches_only_that_session_of_that_user,
        rotate_is_atomic_and_keeps_the_session,
        login_chosen_expiry_is_kept_within_limits,
        login_chosen_expiry_ends_sessions,
        rotation_through_the_gate_sets_the_new_cookie,
    remember_me_cookie_lasts_the_chosen_lifetime,
        peek_sessions_lists_without_pruning,
    );
}

mod event_log {
    keygate_tests::on_both_backends!(crate::events:
        each_change_records_one_event,
        expiry_is_recorded_once_when_the_index_prunes_it,
        the_caps_hold,
        a_crash_between_the_two_steps_loses_at_most_the_event_in_progress,
        followers_see_new_events,
        four_instances_record_exactly_one_event_per_change,
    );
}
