//! The Diesel table definitions, written once and shared by both backends.
//!
//! Kept in step with `migrations/postgres` and `migrations/sqlite` by the `schema_matches_database`
//! integration test, which compares these columns with what each database really has.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        avatar_url -> Nullable<Text>,
        settings -> Jsonb,
        role -> Text,
        disabled_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        mfa_enabled_at -> Nullable<Timestamp>,
        password_change_required_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    user_identities (provider, subject) {
        provider -> Text,
        subject -> Text,
        user_id -> Text,
        union_id -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        requested_ip -> Nullable<Text>,
    }
}

diesel::table! {
    mfa_secrets (user_id) {
        user_id -> Text,
        secret -> Text,
        created_at -> Timestamp,
        last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    mfa_recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mfa_challenges (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        failures -> Integer,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_refreshed_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        last_used_at -> Nullable<Timestamp>,
        last_used_ip -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        session_id -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    prices (id) {
        id -> Text,
        provider -> Text,
        model -> Text,
        input_micros_per_mtok -> BigInt,
        cached_input_micros_per_mtok -> BigInt,
        output_micros_per_mtok -> BigInt,
        currency -> Text,
        effective_from -> Timestamp,
        created_at -> Timestamp,
        created_by -> Nullable<Text>,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    conversations (id) {
        id -> Text,
        user_id -> Text,
        title -> Text,
        provider -> Nullable<Text>,
        model -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    ai_calls (id) {
        id -> Text,
        user_id -> Text,
        conversation_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        provider -> Text,
        model -> Text,
        stream -> Bool,
        status -> Text,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        prompt_tokens -> BigInt,
        cached_prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        usage_source -> Nullable<Text>,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        latency_ms -> Nullable<BigInt>,
        ttft_ms -> Nullable<BigInt>,
        upstream_ms -> Nullable<BigInt>,
        price_id -> Nullable<Text>,
        cost_micros -> BigInt,
        currency -> Nullable<Text>,
        priced -> Bool,
        cached -> Bool,
        attempts -> Jsonb,
        prompt_log -> Nullable<Jsonb>,
        api_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        conversation_id -> Text,
        role -> Text,
        content -> Text,
        reasoning -> Nullable<Text>,
        ai_call_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    budgets (id) {
        id -> Text,
        scope -> Text,
        user_id -> Nullable<Text>,
        period -> Text,
        currency -> Text,
        limit_micros -> BigInt,
        limit_tokens -> Nullable<BigInt>,
        limit_requests -> Nullable<BigInt>,
        spent_micros -> BigInt,
        reserved_micros -> BigInt,
        spent_tokens -> BigInt,
        reserved_tokens -> BigInt,
        spent_requests -> BigInt,
        reserved_requests -> BigInt,
        period_start -> Timestamp,
        period_end -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        thresholds -> Text,
        alerted_percent -> BigInt,
        api_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    budget_reservations (ai_call_id, budget_id) {
        ai_call_id -> Text,
        budget_id -> Text,
        amount_micros -> BigInt,
        tokens -> BigInt,
        requests -> BigInt,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    usage_daily (day, user_id, api_key_id, provider, model, currency, shard) {
        day -> Text,
        user_id -> Text,
        api_key_id -> Text,
        provider -> Text,
        model -> Text,
        currency -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        cached_prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cost_micros -> BigInt,
        shard -> SmallInt,
    }
}

diesel::table! {
    usage_daily_users (day, user_id, currency, shard) {
        day -> Text,
        user_id -> Text,
        currency -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        cached_prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cost_micros -> BigInt,
        shard -> SmallInt,
    }
}

diesel::table! {
    usage_daily_models (day, provider, model, currency, shard) {
        day -> Text,
        provider -> Text,
        model -> Text,
        currency -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        cached_prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cost_micros -> BigInt,
        shard -> SmallInt,
    }
}

diesel::table! {
    rate_counters (key, window_start) {
        key -> Text,
        window_start -> Timestamp,
        count -> BigInt,
    }
}

diesel::table! {
    user_limits (user_id) {
        user_id -> Text,
        requests_per_minute -> Nullable<BigInt>,
        tokens_per_minute -> Nullable<BigInt>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        seq -> Nullable<BigInt>,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        actor_role -> Nullable<Text>,
        operation_name -> Nullable<Text>,
        field -> Text,
        arguments -> Text,
        outcome -> Text,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Text,
        prev_hash -> Nullable<Text>,
        hash -> Nullable<Text>,
    }
}

diesel::table! {
    audit_head (id) {
        id -> BigInt,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    system_logs (id) {
        id -> Text,
        at -> Timestamp,
        level -> Text,
        source -> Text,
        message -> Text,
        fields -> Text,
        request_id -> Nullable<Text>,
        batch_id -> Text,
    }
}

diesel::table! {
    alert_rules (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        params -> Text,
        targets -> Text,
        cooldown_secs -> BigInt,
        enabled -> Bool,
        owner_id -> Nullable<Text>,
        last_fired_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    alert_states (rule_id, subject) {
        rule_id -> Text,
        subject -> Text,
        firing -> Bool,
        suppressed -> Bool,
        changed_at -> Timestamp,
        last_fired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    alerts (id) {
        id -> Text,
        rule_id -> Text,
        owner_id -> Nullable<Text>,
        subject -> Text,
        state -> Text,
        severity -> Text,
        title -> Text,
        body -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    alert_deliveries (id) {
        id -> Text,
        alert_id -> Text,
        channel -> Text,
        recipient -> Nullable<Text>,
        status -> Text,
        attempts -> BigInt,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    invites (id) {
        id -> Text,
        code_hash -> Text,
        note -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        used_by -> Nullable<Text>,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        prefix -> Text,
        secret_hash -> Text,
        scope -> Text,
        allowed_models -> Nullable<Text>,
        requests_per_minute -> Nullable<BigInt>,
        tokens_per_minute -> Nullable<BigInt>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        last_used_ip -> Nullable<Text>,
        family_id -> Text,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        generation -> BigInt,
        algorithm -> Text,
        private_key -> Nullable<Text>,
        public_key -> Nullable<Text>,
        created_at -> Timestamp,
        signs_from -> Timestamp,
        verifies_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    encryption_state (id) {
        id -> Integer,
        master_key_id -> Text,
        changed_at -> Timestamp,
        sealed_through -> Nullable<Text>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(mfa_secrets -> users (user_id));
diesel::joinable!(mfa_recovery_codes -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(user_identities -> users (user_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(budget_reservations -> budgets (budget_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(conversations -> users (user_id));
diesel::joinable!(ai_calls -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(alert_states -> alert_rules (rule_id));
diesel::joinable!(alerts -> alert_rules (rule_id));
diesel::joinable!(alert_deliveries -> alerts (alert_id));
diesel::allow_tables_to_appear_in_same_query!(
    signing_keys,
    encryption_state,
    users,
    mfa_secrets,
    mfa_recovery_codes,
    mfa_challenges,
    password_resets,
    user_identities,
    sessions,
    refresh_tokens,
    prices,
    conversations,
    ai_calls,
    messages,
    budgets,
    budget_reservations,
    usage_daily,
    usage_daily_models,
    usage_daily_users,
    rate_counters,
    user_limits,
    audit_log,
    audit_head,
    system_logs,
    alert_rules,
    alert_states,
    alerts,
    alert_deliveries,
    leases,
    invites,
    api_keys
);
