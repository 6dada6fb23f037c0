//! The admin commands, run as a person would: the real binary against a real database.

use std::io::Write;
use std::process::{Command, Stdio};

use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `customer-portal <args>` with only the database (and `extra`) in its environment.
fn run(db: &PgPool, args: &[&str], extra: &[(&str, &str)], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_customer-portal"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url_of(db))
        .envs(extra.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin written");
    let output = child.wait_with_output().expect("binary exits");
    Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn stored_keys(db: &PgPool, project: Uuid) -> (Option<String>, Option<String>) {
    sqlx::query_as("SELECT stripe_test_secret_key, stripe_live_secret_key FROM projects WHERE id = $1")
        .bind(project)
        .fetch_one(db)
        .await
        .expect("project row")
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_add_creates_a_project_and_prints_only_its_id(db: PgPool) {
    let added = run(&db, &["project", "add", "--test-key", TEST_KEY, "--live-key", LIVE_KEY], &[], "");
    assert_eq!(added.code, 0, "{}", added.stderr);
    let project: Uuid = added.stdout.trim().parse().expect("stdout is the new project's ID");
    assert_eq!(stored_keys(&db, project).await, (Some(TEST_KEY.into()), Some(LIVE_KEY.into())));
    assert!(added.stderr.contains("stored in plaintext; set SECRETS_ENCRYPTION_KEY"), "{}", added.stderr);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_add_encrypts_keys_when_an_encryption_key_is_configured(db: PgPool) {
    let added = run(
        &db,
        &["project", "add", "--test-key", TEST_KEY],
        &[("SECRETS_ENCRYPTION_KEY", ENCRYPTION_KEY)],
        "",
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    let project: Uuid = added.stdout.trim().parse().expect("an ID");
    let (test, live) = stored_keys(&db, project).await;
    assert!(test.expect("stored").starts_with("enc:v1:"));
    assert_eq!(live, None);

    // And the service can use what the command stored.
    insert_customer(&db, project, "user_1", false, "cus_test_123").await;
    let app = TestApp::spawn_with(db, &[("SECRETS_ENCRYPTION_KEY", ENCRYPTION_KEY)]).await;
    app.stripe_creates_sessions().await;
    let response = app
        .post_portal(Some(&token(project, "user_1")), "", serde_json::json!({ "return_url": RETURN_URL }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&app.stripe_requests().await[0], "authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_add_refuses_a_live_key_given_as_the_test_key_without_echoing_it(db: PgPool) {
    let refused = run(&db, &["project", "add", "--test-key", LIVE_KEY], &[], "");
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--test-key: expected sk_test_… or rk_test_…; that is a live-mode key"));
    assert!(!refused.stderr.contains(LIVE_KEY) && !refused.stdout.contains(LIVE_KEY));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM projects").fetch_one(&db).await.expect("count");
    assert_eq!(count, 0, "nothing was written");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_add_refuses_a_publishable_key(db: PgPool) {
    let refused = run(&db, &["project", "add", "--live-key", "pk_live_51LIVEKEYabcdefgh"], &[], "");
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("that is a publishable key"), "{}", refused.stderr);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_add_refuses_an_existing_project_id(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let refused =
        run(&db, &["project", "add", "--id", &project.to_string(), "--live-key", LIVE_KEY], &[], "");
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("already exists"), "{}", refused.stderr);
    assert_eq!(stored_keys(&db, project).await, (Some(TEST_KEY.into()), None), "unchanged");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_set_keys_reads_a_key_from_stdin_and_keeps_the_other_mode(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let set = run(
        &db,
        &["project", "set-keys", "--project", &project.to_string(), "--live-key", "-"],
        &[],
        &format!("{LIVE_KEY}\n"),
    );
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(stored_keys(&db, project).await, (Some(TEST_KEY.into()), Some(LIVE_KEY.into())));
    assert!(set.stdout.contains("live key            sk_live_…mnop (plaintext)"), "{}", set.stdout);
    assert!(!set.stdout.contains(LIVE_KEY));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_set_keys_clears_a_key(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    let set =
        run(&db, &["project", "set-keys", "--project", &project.to_string(), "--clear-live-key"], &[], "");
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(stored_keys(&db, project).await, (Some(TEST_KEY.into()), None));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_set_keys_on_an_unknown_project_fails_and_says_so(db: PgPool) {
    let unknown = Uuid::new_v4().to_string();
    let set = run(&db, &["project", "set-keys", "--project", &unknown, "--test-key", TEST_KEY], &[], "");
    assert_eq!(set.code, 1);
    assert!(set.stderr.contains(&format!("project {unknown} does not exist")), "{}", set.stderr);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_show_masks_keys_and_lists_the_settings(db: PgPool) {
    let added = run(
        &db,
        &[
            "project",
            "add",
            "--test-key",
            TEST_KEY,
            "--live-key",
            LIVE_KEY,
            "--allowed-origin",
            "https://app.example.com",
            "--allowed-origin",
            "https://www.example.com/",
            "--test-portal-configuration",
            "bpc_1TestConfig0001",
            "--default-locale",
            "fr",
        ],
        &[("SECRETS_ENCRYPTION_KEY", ENCRYPTION_KEY)],
        "",
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    let project = added.stdout.trim().to_owned();
    insert_customer(&db, project.parse().expect("uuid"), "user_1", false, "cus_test_123").await;

    let shown = run(
        &db,
        &["project", "show", "--project", &project],
        &[("SECRETS_ENCRYPTION_KEY", ENCRYPTION_KEY)],
        "",
    );
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let lines: Vec<&str> = shown.stdout.lines().collect();
    assert_eq!(lines[0], format!("project             {project}"));
    assert!(lines[1].starts_with("test key            sk_test_…mnop (encrypted with key "), "{}", lines[1]);
    assert!(lines[2].starts_with("live key            sk_live_…mnop (encrypted with key "), "{}", lines[2]);
    assert_eq!(lines[3], "return_url origins  https://app.example.com, https://www.example.com");
    assert_eq!(lines[4], "test portal config  bpc_1TestConfig0001");
    assert_eq!(lines[5], "live portal config  (Stripe's default)");
    assert_eq!(lines[6], "default locale      fr");
    assert_eq!(lines[7], "customers           1 in test mode, 0 in live mode");
    assert!(!shown.stdout.contains(TEST_KEY) && !shown.stdout.contains(LIVE_KEY));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_set_refuses_an_unknown_locale_and_a_malformed_configuration(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await.to_string();
    let locale = run(&db, &["project", "set", "--project", &project, "--default-locale", "klingon"], &[], "");
    assert_eq!(locale.code, 2);
    assert!(locale.stderr.contains("--default-locale: \"klingon\" is not a locale"), "{}", locale.stderr);
    let config =
        run(&db, &["project", "set", "--project", &project, "--live-portal-configuration", "cfg_1"], &[], "");
    assert_eq!(config.code, 2);
    assert!(config.stderr.contains("--live-portal-configuration: expected a portal configuration ID"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_set_clears_the_allowed_origins(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    assert_eq!(
        run(&db, &["project", "set", "--project", &id, "--allowed-origin", "https://a.example"], &[], "")
            .code,
        0
    );
    let cleared = run(&db, &["project", "set", "--project", &id, "--clear-allowed-origins"], &[], "");
    assert_eq!(cleared.code, 0, "{}", cleared.stderr);
    assert!(cleared.stdout.contains("return_url origins  (any https origin; http://localhost in test mode)"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn customer_link_then_show_then_unlink(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await.to_string();
    let link =
        ["customer", "link", "--project", &project, "--user", "user_1", "--customer", "cus_NffrFeUfNV2Hib"];
    let linked = run(&db, &link, &[], "");
    assert_eq!(linked.code, 0, "{}", linked.stderr);
    assert_eq!(
        linked.stdout.trim(),
        format!("linked user \"user_1\" of project {project} to cus_NffrFeUfNV2Hib (test mode)")
    );

    let shown = run(&db, &["customer", "show", "--project", &project, "--user", "user_1"], &[], "");
    assert_eq!(shown.stdout, "test mode  cus_NffrFeUfNV2Hib\nlive mode  (none)\n");

    let unlinked = run(&db, &["customer", "unlink", "--project", &project, "--user", "user_1"], &[], "");
    assert_eq!(unlinked.code, 0, "{}", unlinked.stderr);
    let shown = run(&db, &["customer", "show", "--project", &project, "--user", "user_1"], &[], "");
    assert_eq!(shown.stdout, "test mode  (none)\nlive mode  (none)\n");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn customer_link_replaces_the_earlier_customer_in_that_mode(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    insert_customer(&db, project, "user_1", true, "cus_OldLiveCustomer1").await;
    let id = project.to_string();
    let linked = run(
        &db,
        &[
            "customer",
            "link",
            "--project",
            &id,
            "--user",
            "user_1",
            "--customer",
            "cus_NewLiveCustomer2",
            "--live",
        ],
        &[],
        "",
    );
    assert_eq!(linked.code, 0, "{}", linked.stderr);
    let shown = run(&db, &["customer", "show", "--project", &id, "--user", "user_1"], &[], "");
    assert_eq!(shown.stdout, "test mode  (none)\nlive mode  cus_NewLiveCustomer2\n");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn customer_link_refuses_an_id_that_is_not_a_customer(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await.to_string();
    let refused = run(
        &db,
        &["customer", "link", "--project", &project, "--user", "u", "--customer", "sub_123456789"],
        &[],
        "",
    );
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--customer: expected a Stripe customer ID"), "{}", refused.stderr);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn customer_link_to_an_unknown_project_fails_and_says_so(db: PgPool) {
    let unknown = Uuid::new_v4().to_string();
    let refused = run(
        &db,
        &["customer", "link", "--project", &unknown, "--user", "u", "--customer", "cus_NffrFeUfNV2Hib"],
        &[],
        "",
    );
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("does not exist"), "{}", refused.stderr);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn customer_unlink_of_nothing_fails_and_says_so(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await.to_string();
    let refused =
        run(&db, &["customer", "unlink", "--project", &project, "--user", "nobody", "--live"], &[], "");
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("has no live mode customer"), "{}", refused.stderr);
}
