//! Tokens, Stripe keys and portal URLs never reach a log line, at any level: the real
//! binary runs with `RUST_LOG=trace` and everything it writes is searched.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn logs_never_contain_the_token_the_key_or_the_portal_url(db: PgPool) {
    let stripe = fake_stripe_creating_sessions().await;
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    insert_customer(&db, project, "user_1", false, "cus_test_123").await;
    let stripe_uri = stripe.uri();
    let mut service =
        Service::start(&database_url_of(&db), &[("RUST_LOG", "trace"), ("STRIPE_API_BASE", &stripe_uri)])
            .await;
    assert!(eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await);

    let url = format!("http://127.0.0.1:{}{PORTAL_ROUTE}", service.port);
    let http = reqwest::Client::new();
    let token = token(project, "user_1");
    let ok = http
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({ "return_url": RETURN_URL }))
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status(), 200);
    let expired = {
        let mut c = claims(project, "user_1");
        c["exp"] = json!(now() - 3600);
        sign(&c)
    };
    let refused =
        http.post(&url).bearer_auth(&expired).json(&json!({ "return_url": RETURN_URL })).send().await;
    assert_eq!(refused.expect("sent").status(), 401);
    service.signal("TERM");
    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0));

    let logs = service.log();
    assert!(logs.contains("request finished") && logs.contains("TRACE"), "the logs were captured: {logs}");
    for secret in [token.as_str(), expired.as_str(), TEST_KEY, LIVE_KEY, PORTAL_URL] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn text_logs_written_to_a_file_carry_no_colour_codes(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db), &[]).await;
    assert!(eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await);
    service.signal("TERM");
    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0));

    let logs = service.log();
    assert!(logs.contains("INFO customer_portal: listening"), "plain text: {logs}");
    assert!(!logs.contains('\u{1b}'), "no escape codes: {logs}");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn json_logs_carry_the_request_id_the_caller_sent(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db), &[("LOG_FORMAT", "json")]).await;
    assert!(eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await);
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", service.port))
        .header("x-request-id", "req-from-the-edge-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["x-request-id"], "req-from-the-edge-42");
    service.signal("TERM");
    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0));

    let lines: Vec<serde_json::Value> = service
        .log()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let request = lines
        .iter()
        .find(|line| line["message"] == "request finished" && line["span"]["route"] == "/healthz")
        .expect("a request line");
    assert_eq!(request["span"]["request_id"], "req-from-the-edge-42");
    assert_eq!(request["span"]["status"], 200);
    assert_eq!(request["level"], "INFO");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_to_start_with_an_unknown_log_format(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db), &[("LOG_FORMAT", "yaml")]).await;
    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(2));
    assert!(service.log().contains("LOG_FORMAT: expected `text` or `json`, got `yaml`"), "{}", service.log());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn every_request_has_its_log_line_when_the_service_stops_right_after(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db), &[]).await;
    assert!(eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/healthz", service.port);
    for _ in 0..200 {
        assert_eq!(http.get(&url).send().await.expect("sent").status(), 200);
    }
    service.signal("TERM");
    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0));

    let lines =
        service.log().lines().filter(|l| l.contains("request finished") && l.contains("/healthz")).count();
    assert_eq!(lines, 200, "one line per request, none lost at shutdown");
}
