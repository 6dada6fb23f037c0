-- Keeping customers current from Stripe's webhooks (README, "Keeping customers current").
-- Every new column is nullable or has a default, so rows naming only the contract's
-- columns still insert.

-- Each mode's webhook signing secret (whsec_..., encrypted like the API keys), and the
-- one it replaced, which stays valid for 24 hours after `..._replaced_at` (Stripe's
-- roll window).
ALTER TABLE projects
    ADD COLUMN IF NOT EXISTS stripe_test_webhook_secret text NULL,
    ADD COLUMN IF NOT EXISTS stripe_live_webhook_secret text NULL,
    ADD COLUMN IF NOT EXISTS stripe_test_webhook_secret_previous text NULL,
    ADD COLUMN IF NOT EXISTS stripe_live_webhook_secret_previous text NULL,
    ADD COLUMN IF NOT EXISTS stripe_test_webhook_secret_replaced_at timestamptz NULL,
    ADD COLUMN IF NOT EXISTS stripe_live_webhook_secret_replaced_at timestamptz NULL;

-- When a link last changed: an event's `created` for links this service writes, the
-- time of writing for everyone else's (the default, and the trigger for updates), so an
-- older event never overrides a newer write.
ALTER TABLE stripe_customers ADD COLUMN IF NOT EXISTS changed_at timestamptz NOT NULL DEFAULT now();

CREATE OR REPLACE FUNCTION stripe_customers_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A writer that does not set changed_at itself changed the row now.
    IF NEW.changed_at IS NOT DISTINCT FROM OLD.changed_at THEN
        NEW.changed_at := now();
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS stripe_customers_touch ON stripe_customers;
CREATE TRIGGER stripe_customers_touch BEFORE UPDATE ON stripe_customers
    FOR EACH ROW EXECUTE FUNCTION stripe_customers_touch();

-- customer.deleted removes every link to a customer: found by this index.
CREATE INDEX IF NOT EXISTS stripe_customers_by_customer
    ON stripe_customers (project_id, livemode, stripe_customer_id);

-- Events applied (or recorded and ignored), so a repeat changes nothing. IDs and times
-- only: never the payload, whose customer details are personal data. Pruned after 30
-- days (Stripe retries for 3).
CREATE TABLE IF NOT EXISTS stripe_webhook_events (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    livemode boolean NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    created timestamptz NOT NULL,
    customer_id text NULL,
    user_id text NULL,
    outcome text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, livemode, event_id)
);
CREATE INDEX IF NOT EXISTS stripe_webhook_events_by_age ON stripe_webhook_events (received_at);

-- Tombstones: a deleted customer (never linked again by an event older than its
-- deletion), and a user whose link that deletion removed (so an older event cannot
-- bring back a link the user had before).
CREATE TABLE IF NOT EXISTS stripe_deleted_customers (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    livemode boolean NOT NULL,
    customer_id text NOT NULL,
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, livemode, customer_id)
);
CREATE TABLE IF NOT EXISTS stripe_unlinked_users (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    livemode boolean NOT NULL,
    user_id text NOT NULL,
    unlinked_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, livemode, user_id)
);

-- Applies one change, in one statement (so atomically, and in one round trip), under
-- the ordering rules: a link is ignored ('stale') when the user's link changed at or
-- after `p_created` (after, when a deletion removed it), or the customer was deleted at
-- or after it; a deletion removes the links that changed at or before it. With `p_event_id`,
-- the event is recorded with what became of it; a repeat answers 'duplicate' and changes
-- nothing (a concurrent copy waits on the first one's lock and sees it once it commits).
--   p_action: 'link' (p_user_id to p_customer_id), 'delete' (p_customer_id), 'ignore'.
-- Copies of one event, changes to one customer, and to one user's link, are serialised
-- by transaction-level advisory locks, always taken event first, then customer, then
-- users in sorted order, so concurrent deliveries queue instead of deadlocking or
-- interleaving.
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
    linked_user text;
BEGIN
    IF p_event_id IS NOT NULL THEN
        -- A concurrent copy of the event waits here until the first one commits.
        PERFORM pg_advisory_xact_lock(hashtextextended(format('event:%s:%s:%s', p_project_id, p_livemode, p_event_id), 0));
        IF EXISTS (SELECT 1 FROM stripe_webhook_events
                   WHERE project_id = p_project_id AND livemode = p_livemode AND event_id = p_event_id) THEN
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
