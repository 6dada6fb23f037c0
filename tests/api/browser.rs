//! The "Manage billing" page in headless Chromium: see examples/manage-billing/.
