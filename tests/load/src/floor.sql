-- The raw floor of CheckCapability: the same transaction the service runs
-- (begin read-only, set the RLS context, the check, commit), pipelined in
-- one round trip, driven by pgbench as the application role.
-- Variables: -D tenants=… -D users=… -D nodes=… -D capabilities=…
\set t random(0, :tenants - 1)
\set u random(0, :users - 1)
\set n random(0, :nodes - 1)
\set c random(0, :capabilities - 1)
\startpipeline
BEGIN READ ONLY;
SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('app.tenant_id', md5('bench/tenant/' || (:t)::text)::uuid::text, true), set_config('app.user_id', md5('bench/user/' || (:t)::text || '/' || (:u)::text)::uuid::text, true);
SELECT ordinal, reason FROM auth.check_capabilities(md5('bench/user/' || (:t)::text || '/' || (:u)::text)::uuid, ARRAY['bench.cap_' || (:c)::text], ARRAY[md5('bench/node/' || (:t)::text || '/' || (:n)::text)::uuid]);
COMMIT;
\endpipeline
