DROP TABLE audit.policy_change_log;
DROP VIEW auth.policy_capability;
DROP TABLE auth.endpoint_policy;
