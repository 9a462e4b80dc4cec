DROP INDEX sessions_user_client_ip_idx;
DROP TABLE invites;
