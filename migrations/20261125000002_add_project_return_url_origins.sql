-- Per-project allow-list of return_url origins (e.g. {https://app.example.com}).
-- NULL or empty: any https origin, plus http://localhost in test mode.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS return_url_allowed_origins text[] NULL;
