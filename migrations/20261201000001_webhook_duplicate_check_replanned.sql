-- stripe_apply_change, with the check for a repeated event planned for each call.
--
-- PL/pgSQL keeps a statement's plan for the whole session once it judges a generic plan
-- good enough. The first version's check for a repeat (`EXISTS (SELECT ... FROM
-- stripe_webhook_events ...)`) was planned while the table was empty, as a scan of the
-- whole table, and kept that plan as the table grew: 1 ms of PostgreSQL's CPU per event
-- after 24,000 events, and rising (bench/RESULTS-webhooks.md). Planned for each call,
-- it is an index lookup from the first few hundred rows on, at the cost of one small
-- plan per event. Every other statement here finds its row through an index whatever
-- the plan (the upserts' conflict targets), or reads tables that stay small (the
-- tombstones). Nothing else changes.

CREATE OR REPLACE FUNCTION stripe_apply_change(
    p_project_id uuid,
    p_livemode boolean,
    p_event_id text,
    p_event_type text,
    p_created timestamptz,
    p_action text,
    p_customer_id text,
    p_user_id text
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_outcome text;
    v_seen boolean;
    linked_user text;
BEGIN
    IF p_event_id IS NOT NULL THEN
        -- A concurrent copy of the event waits here until the first one commits.
        PERFORM pg_advisory_xact_lock(hashtextextended(format('event:%s:%s:%s', p_project_id, p_livemode, p_event_id), 0));
        -- EXECUTE plans the check anew each time, for the table as it is now (see above).
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM stripe_webhook_events
                                WHERE project_id = $1 AND livemode = $2 AND event_id = $3)'
            INTO v_seen USING p_project_id, p_livemode, p_event_id;
        IF v_seen THEN
            RETURN 'duplicate';
        END IF;
    END IF;

    IF p_action = 'link' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(format('customer:%s:%s:%s', p_project_id, p_livemode, p_customer_id), 0));
        PERFORM pg_advisory_xact_lock(hashtextextended(format('user:%s:%s:%s', p_project_id, p_livemode, p_user_id), 0));
        IF EXISTS (SELECT 1 FROM stripe_deleted_customers
                   WHERE project_id = p_project_id AND livemode = p_livemode AND customer_id = p_customer_id
                     AND deleted_at >= p_created)
           OR EXISTS (SELECT 1 FROM stripe_unlinked_users
                      WHERE project_id = p_project_id AND livemode = p_livemode AND user_id = p_user_id
                        AND unlinked_at > p_created) THEN
            v_outcome := 'stale';
        ELSE
            INSERT INTO stripe_customers (project_id, user_id, livemode, stripe_customer_id, changed_at)
            VALUES (p_project_id, p_user_id, p_livemode, p_customer_id, p_created)
            ON CONFLICT (project_id, user_id, livemode) DO UPDATE
                SET stripe_customer_id = EXCLUDED.stripe_customer_id, changed_at = EXCLUDED.changed_at
                WHERE stripe_customers.changed_at < EXCLUDED.changed_at;
            v_outcome := CASE WHEN FOUND THEN 'applied' ELSE 'stale' END;
        END IF;
    ELSIF p_action = 'delete' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(format('customer:%s:%s:%s', p_project_id, p_livemode, p_customer_id), 0));
        -- While this customer's lock is held no link to it can be added, only removed,
        -- so the users locked here are every user the deletion can unlink.
        FOR linked_user IN
            SELECT user_id FROM stripe_customers
            WHERE project_id = p_project_id AND livemode = p_livemode AND stripe_customer_id = p_customer_id
            ORDER BY user_id
        LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended(format('user:%s:%s:%s', p_project_id, p_livemode, linked_user), 0));
        END LOOP;
        INSERT INTO stripe_deleted_customers (project_id, livemode, customer_id, deleted_at)
        VALUES (p_project_id, p_livemode, p_customer_id, p_created)
        ON CONFLICT (project_id, livemode, customer_id) DO UPDATE
            SET deleted_at = greatest(stripe_deleted_customers.deleted_at, EXCLUDED.deleted_at);
        WITH removed AS (
            DELETE FROM stripe_customers
            WHERE project_id = p_project_id AND livemode = p_livemode AND stripe_customer_id = p_customer_id
              AND changed_at <= p_created
            RETURNING user_id
        )
        INSERT INTO stripe_unlinked_users (project_id, livemode, user_id, unlinked_at)
        SELECT p_project_id, p_livemode, user_id, p_created FROM removed
        ON CONFLICT (project_id, livemode, user_id) DO UPDATE
            SET unlinked_at = greatest(stripe_unlinked_users.unlinked_at, EXCLUDED.unlinked_at);
        v_outcome := 'applied';
    ELSE
        v_outcome := 'ignored';
    END IF;

    IF p_event_id IS NOT NULL THEN
        INSERT INTO stripe_webhook_events
            (project_id, livemode, event_id, event_type, created, customer_id, user_id, outcome)
        VALUES (p_project_id, p_livemode, p_event_id, p_event_type, p_created, p_customer_id, p_user_id, v_outcome);
    END IF;
    RETURN v_outcome;
END
$$;
