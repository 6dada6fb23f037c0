-- The portal's hot-path lookup (db/portal.rs): one row per asked (project, user, mode)
-- whose project exists, numbered as asked.
SELECT k.position AS "position!",
       CASE WHEN k.livemode THEN p.stripe_live_secret_key ELSE p.stripe_test_secret_key END AS secret_key,
       c.stripe_customer_id AS "customer_id?",
       p.return_url_allowed_origins AS allowed_origins,
       CASE WHEN k.livemode THEN p.stripe_live_portal_configuration
            ELSE p.stripe_test_portal_configuration END AS configuration,
       p.portal_default_locale AS default_locale
FROM unnest($1::uuid[], $2::text[], $3::bool[]) WITH ORDINALITY AS k(project_id, user_id, livemode, position)
-- The `ANY` lets the planner fetch only the batch's projects by index; with the
-- join alone it hashes the whole table for every batch (bench/RESULTS.md).
JOIN projects p ON p.id = k.project_id AND p.id = ANY($1::uuid[])
LEFT JOIN stripe_customers c
       ON c.project_id = k.project_id AND c.user_id = k.user_id AND c.livemode = k.livemode
