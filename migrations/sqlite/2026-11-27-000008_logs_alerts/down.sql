DROP INDEX ai_calls_provider_started_idx;
DROP TABLE leases;
DROP TABLE alert_deliveries;
DROP TABLE alerts;
DROP TABLE alert_states;
DROP TABLE alert_rules;
DROP TABLE system_logs;
