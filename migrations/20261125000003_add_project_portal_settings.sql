-- Per-project Customer Portal settings. All nullable, so rows written with only the
-- contract's columns still insert. NULL means "Stripe's default" for each.
ALTER TABLE projects
    -- The portal configuration (bpc_...) sessions open with, per mode: configurations
    -- belong to one mode in Stripe, so one ID cannot serve both.
    ADD COLUMN IF NOT EXISTS stripe_test_portal_configuration text NULL
        CHECK (stripe_test_portal_configuration ~ '^bpc_[A-Za-z0-9]+$'),
    ADD COLUMN IF NOT EXISTS stripe_live_portal_configuration text NULL
        CHECK (stripe_live_portal_configuration ~ '^bpc_[A-Za-z0-9]+$'),
    -- The portal's language when the request names none (a Stripe locale, e.g. fr, en-GB).
    ADD COLUMN IF NOT EXISTS portal_default_locale text NULL;
