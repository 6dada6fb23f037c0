-- The two tables of the contract. Other services write these rows, so any column added
-- later must be nullable or have a default.
CREATE TABLE IF NOT EXISTS projects (
    id uuid PRIMARY KEY,
    stripe_test_secret_key text NULL,
    stripe_live_secret_key text NULL
);

CREATE TABLE IF NOT EXISTS stripe_customers (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id text NOT NULL,
    livemode boolean NOT NULL,
    stripe_customer_id text NOT NULL,
    PRIMARY KEY (project_id, user_id, livemode)
);
