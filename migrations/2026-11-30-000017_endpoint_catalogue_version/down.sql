DROP TRIGGER endpoint_policy_changed ON auth.endpoint_policy;
DROP FUNCTION auth.bump_endpoint_catalogue_version();
DROP TABLE auth.endpoint_catalogue_version;
