//! Webhook secrets through the admin commands, and `project webhook-setup` against a
//! fake Stripe: the real binary, as a person runs it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

use crate::{
    support::*,
    webhooks::{WEBHOOK_SECRET, completed, link_of, project_with_webhooks, signature_header, webhook_path},
};

const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SECRET: &str = "whsec_FromTheDashboard0123456789";
const NEXT_SECRET: &str = "whsec_RolledInTheDashboard98765";
const CREATED_SECRET: &str = "whsec_CreatedByWebhookSetup123456";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `customer-portal <args>` with the database, the encryption key and `extra`, off the
/// async runtime so a fake Stripe on it can answer.
async fn run(db: &PgPool, args: &[&str], extra: &[(&str, &str)], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_customer-portal"));
    command
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url_of(db))
        .env("SECRETS_ENCRYPTION_KEY", ENCRYPTION_KEY)
        .envs(extra.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("binary starts");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin written");
        let output = child.wait_with_output().expect("binary exits");
        Run {
            code: output.status.code().expect("exit code"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("joined")
}

async fn stored_secret(db: &PgPool, project: Uuid) -> (Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT stripe_test_webhook_secret, stripe_test_webhook_secret_previous FROM projects WHERE id = $1",
    )
    .bind(project)
    .fetch_one(db)
    .await
    .expect("project row")
}

/// A delivery signed with `secret`, to a service that can decrypt what the commands stored.
async fn delivery_status(db: &PgPool, project: Uuid, secret: &str, event_id: &str) -> u16 {
    let app = TestApp::spawn_with(db.clone(), &[("SECRETS_ENCRYPTION_KEY", ENCRYPTION_KEY)]).await;
    let body = serde_json::to_vec(&completed(event_id, now(), "user_1", "cus_A1234567")).expect("json");
    app.http
        .post(app.url(&webhook_path(project)))
        .header("Stripe-Signature", signature_header(secret, now(), &body))
        .body(body)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn set_keys_stores_a_webhook_secret_encrypted_and_show_masks_it(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    let set =
        run(&db, &["project", "set-keys", "--project", &id, "--test-webhook-secret", SECRET], &[], "").await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    let (stored, _) = stored_secret(&db, project).await;
    assert!(stored.expect("stored").starts_with("enc:v1:"));
    assert!(set.stdout.contains("test webhook secret whsec_…6789 (encrypted with key"), "{}", set.stdout);
    assert!(set.stdout.contains("live webhook secret (not set)"), "{}", set.stdout);
    assert!(!set.stdout.contains(SECRET));
    assert_eq!(delivery_status(&db, project, SECRET, "evt_1").await, 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn set_keys_reads_a_webhook_secret_from_stdin(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    let args = ["project", "set-keys", "--project", &id, "--test-webhook-secret", "-"];
    let set = run(&db, &args, &[], &format!("{SECRET}\n")).await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(delivery_status(&db, project, SECRET, "evt_1").await, 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn set_keys_refuses_a_webhook_secret_without_the_whsec_prefix(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    let args =
        ["project", "set-keys", "--project", &id, "--live-webhook-secret", "sk_live_NotAWebhookSecret1"];
    let set = run(&db, &args, &[], "").await;
    assert_eq!(set.code, 2);
    assert!(
        set.stderr.contains("--live-webhook-secret: expected a webhook signing secret like whsec_"),
        "{}",
        set.stderr
    );
    assert!(!set.stderr.contains("NotAWebhookSecret"), "the value is never repeated");
    let live: Option<String> =
        sqlx::query_scalar("SELECT stripe_live_webhook_secret FROM projects WHERE id = $1")
            .bind(project)
            .fetch_one(&db)
            .await
            .expect("row");
    assert_eq!(live, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_new_webhook_secret_leaves_the_previous_one_valid_for_the_roll_window(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    for secret in [SECRET, NEXT_SECRET] {
        let set =
            run(&db, &["project", "set-keys", "--project", &id, "--test-webhook-secret", secret], &[], "")
                .await;
        assert_eq!(set.code, 0, "{}", set.stderr);
    }
    let show = run(&db, &["project", "show", "--project", &id], &[], "").await;
    assert!(show.stdout.contains("the previous one is still accepted"), "{}", show.stdout);
    assert_eq!(delivery_status(&db, project, NEXT_SECRET, "evt_1").await, 200);
    assert_eq!(delivery_status(&db, project, SECRET, "evt_2").await, 200);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn clearing_a_webhook_secret_turns_the_mode_off(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    run(&db, &["project", "set-keys", "--project", &id, "--test-webhook-secret", SECRET], &[], "").await;
    let clear =
        run(&db, &["project", "set-keys", "--project", &id, "--clear-test-webhook-secret"], &[], "").await;
    assert_eq!(clear.code, 0, "{}", clear.stderr);
    assert_eq!(stored_secret(&db, project).await, (None, None));
    assert_eq!(delivery_status(&db, project, SECRET, "evt_1").await, 404);
}

fn endpoint_url(project: Uuid) -> String {
    format!("https://billing.example.com/api/v1/payments/stripe/webhooks/{project}?test_mode=true")
}

fn endpoint(project: Uuid, secret: Option<&str>) -> serde_json::Value {
    let mut endpoint = json!({
        "id": "we_1Setup",
        "object": "webhook_endpoint",
        "url": endpoint_url(project),
        "enabled_events": ["checkout.session.completed", "customer.created", "customer.updated", "customer.deleted"],
        "status": "enabled",
    });
    if let Some(secret) = secret {
        endpoint["secret"] = json!(secret);
    }
    endpoint
}

async fn stripe_lists(stripe: &MockServer, endpoints: serde_json::Value) {
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/webhook_endpoints"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "object": "list", "data": endpoints, "has_more": false })),
        )
        .mount(stripe)
        .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn webhook_setup_creates_the_endpoint_and_stores_its_secret(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let stripe = MockServer::start().await;
    stripe_lists(&stripe, json!([])).await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(200).set_body_json(endpoint(project, Some(CREATED_SECRET))))
        .expect(1)
        .mount(&stripe)
        .await;
    let id = project.to_string();
    let args = ["project", "webhook-setup", "--project", &id, "--public-url", "https://billing.example.com/"];
    let setup = run(&db, &args, &[("STRIPE_API_BASE", &stripe.uri())], "").await;
    assert_eq!(setup.code, 0, "{}", setup.stderr);
    assert!(
        setup.stdout.starts_with("created Stripe webhook endpoint we_1Setup (test mode)"),
        "{}",
        setup.stdout
    );
    assert!(setup.stdout.contains(&endpoint_url(project)), "{}", setup.stdout);
    assert!(!setup.stdout.contains(CREATED_SECRET), "{}", setup.stdout);

    let requests = stripe.received_requests().await.expect("recorded");
    let create = requests.iter().find(|r| r.method.as_str() == "POST").expect("a create");
    assert_eq!(header(create, "authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&create.body).into_owned().collect();
    let value = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(value("url"), Some(endpoint_url(project).as_str()));
    assert_eq!(value("api_version"), Some("2026-10-28.endive"));
    let events: Vec<&str> =
        fields.iter().filter(|(k, _)| k.starts_with("enabled_events[")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        events,
        ["checkout.session.completed", "customer.created", "customer.updated", "customer.deleted"]
    );

    assert_eq!(delivery_status(&db, project, CREATED_SECRET, "evt_1").await, 200);
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn webhook_setup_run_again_updates_its_endpoint_instead_of_creating_another(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let stripe = MockServer::start().await;
    let mut other = endpoint(project, None);
    other["id"] = json!("we_1Other");
    other["url"] = json!("https://elsewhere.example.com/hooks");
    stripe_lists(&stripe, json!([other, endpoint(project, None)])).await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&stripe)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/webhook_endpoints/we_1Setup"))
        .respond_with(ResponseTemplate::new(200).set_body_json(endpoint(project, None)))
        .expect(1)
        .mount(&stripe)
        .await;
    let id = project.to_string();
    let args = ["project", "webhook-setup", "--project", &id, "--public-url", "https://billing.example.com"];
    let setup = run(&db, &args, &[("STRIPE_API_BASE", &stripe.uri())], "").await;
    assert_eq!(setup.code, 0, "{}", setup.stderr);
    assert!(
        setup.stdout.starts_with("updated Stripe webhook endpoint we_1Setup (test mode)"),
        "{}",
        setup.stdout
    );
    assert!(setup.stdout.contains("secret   unchanged"), "{}", setup.stdout);
    let update =
        stripe.received_requests().await.expect("recorded").into_iter().find(|r| r.method.as_str() == "POST");
    let fields: Vec<(String, String)> =
        url::form_urlencoded::parse(&update.expect("an update").body).into_owned().collect();
    assert_eq!(fields.iter().filter(|(k, _)| k.starts_with("enabled_events[")).count(), 4);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn webhook_setup_refuses_a_project_without_a_key_for_the_mode(db: PgPool) {
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    let id = project.to_string();
    let args = [
        "project",
        "webhook-setup",
        "--project",
        &id,
        "--live",
        "--public-url",
        "https://billing.example.com",
    ];
    let setup = run(&db, &args, &[("STRIPE_API_BASE", "http://127.0.0.1:9")], "").await;
    assert_eq!(setup.code, 1);
    assert!(setup.stderr.contains("has no live mode Stripe key"), "{}", setup.stderr);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn encrypt_keys_seals_webhook_secrets_stored_in_plaintext(db: PgPool) {
    let project = project_with_webhooks(&db).await;
    let encrypted = run(&db, &["encrypt-keys"], &[], "").await;
    assert_eq!(encrypted.code, 0, "{}", encrypted.stderr);
    let (stored, _) = stored_secret(&db, project).await;
    assert!(stored.expect("stored").starts_with("enc:v1:"));
    let live: String = sqlx::query_scalar("SELECT stripe_live_webhook_secret FROM projects WHERE id = $1")
        .bind(project)
        .fetch_one(&db)
        .await
        .expect("row");
    assert!(live.starts_with("enc:v1:"));
    assert_eq!(delivery_status(&db, project, WEBHOOK_SECRET, "evt_1").await, 200);
}
