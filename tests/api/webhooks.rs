//! `POST /api/v1/payments/stripe/webhooks/{project_id}`: Stripe's signed events keep the
//! customer links current. Payloads are signed here, with the HMAC crates directly.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

pub const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdefghijklmnop";
const LIVE_WEBHOOK_SECRET: &str = "whsec_live_0123456789abcdefghijklmnop";
const OLD_SECRET: &str = "whsec_old_0123456789abcdefghijklmnopq";

pub fn webhook_path(project: impl std::fmt::Display) -> String {
    format!("/api/v1/payments/stripe/webhooks/{project}")
}

pub fn hmac_hex(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hmac_hex(secret, t, body))
}

/// A project with both API keys and both webhook secrets, stored as other services would.
pub async fn project_with_webhooks(db: &PgPool) -> Uuid {
    let project = insert_project(db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    sqlx::query(
        "UPDATE projects SET stripe_test_webhook_secret = $2, stripe_live_webhook_secret = $3 WHERE id = $1",
    )
    .bind(project)
    .bind(WEBHOOK_SECRET)
    .bind(LIVE_WEBHOOK_SECRET)
    .execute(db)
    .await
    .expect("secrets stored");
    project
}

pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "type": kind,
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": object },
    })
}

pub fn completed(id: &str, created: i64, user: &str, customer: &str) -> Value {
    event(
        id,
        "checkout.session.completed",
        created,
        json!({
            "id": format!("cs_test_{id}"),
            "object": "checkout.session",
            "client_reference_id": user,
            "customer": customer,
            "customer_details": { "email": "jenny.rosen@example.com", "name": "Jenny Rosen" },
            "metadata": {},
            "status": "complete",
        }),
    )
}

fn customer_event(id: &str, kind: &str, created: i64, customer: &str, user: Option<&str>) -> Value {
    let metadata = user.map_or(json!({}), |u| json!({ "user_id": u }));
    event(
        id,
        kind,
        created,
        json!({ "id": customer, "object": "customer", "email": "jenny.rosen@example.com", "metadata": metadata }),
    )
}

/// Sends raw bytes with the given header to the test-mode URL (or `query`'s).
async fn deliver(
    app: &TestApp,
    project: impl std::fmt::Display,
    query: &str,
    body: Vec<u8>,
    header: Option<String>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url(&format!("{}{query}", webhook_path(project))))
        .header("content-type", "application/json; charset=utf-8")
        .body(body);
    if let Some(header) = header {
        request = request.header("Stripe-Signature", header);
    }
    request.send().await.expect("sent")
}

/// Sends `event` signed now with the test-mode secret, as Stripe would.
pub async fn send(app: &TestApp, project: Uuid, event: &Value) -> reqwest::Response {
    let body = serde_json::to_vec(event).expect("serializes");
    let header = signature_header(WEBHOOK_SECRET, now(), &body);
    deliver(app, project, "", body, Some(header)).await
}

pub async fn link_of(db: &PgPool, project: Uuid, user: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT stripe_customer_id FROM stripe_customers WHERE project_id = $1 AND user_id = $2 AND NOT livemode",
    )
    .bind(project)
    .bind(user)
    .fetch_optional(db)
    .await
    .expect("query")
}

async fn recorded_events(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stripe_webhook_events").fetch_one(db).await.expect("count")
}

async fn assert_received(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "received": true }));
}

async fn assert_refused(response: reqwest::Response, status: u16, detail: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(body(response).await, json!({ "detail": detail }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_completed_checkout_links_its_client_reference_to_its_customer(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    assert_received(send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_portal_opens_for_a_user_linked_by_a_webhook_right_after(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    app.stripe_creates_sessions().await;
    let project = project_with_webhooks(&db).await;
    assert_received(send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await).await;

    let response =
        app.post_portal(Some(&token(project, "user_1")), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(form(&app.stripe_requests().await[0])["customer"], "cus_A1234567");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_completed_checkout_without_a_reference_links_its_metadata_user(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let mut event = completed("evt_1", now(), "ignored", "cus_A1234567");
    event["data"]["object"]["client_reference_id"] = Value::Null;
    event["data"]["object"]["metadata"] = json!({ "user_id": "user_7" });
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_7").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_completed_checkout_without_a_customer_changes_nothing(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let mut event = completed("evt_1", now(), "user_1", "cus_A1234567");
    event["data"]["object"]["customer"] = Value::Null;
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_1").await, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_created_customer_with_a_user_in_its_metadata_is_linked_to_that_user(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let event = customer_event("evt_1", "customer.created", now(), "cus_A1234567", Some("user_1"));
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_updated_customer_replaces_the_users_older_link(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let t = now();
    assert_received(send(&app, project, &completed("evt_1", t - 10, "user_1", "cus_A1234567")).await).await;
    let event = customer_event("evt_2", "customer.updated", t, "cus_B1234567", Some("user_1"));
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_B1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_customer_without_a_user_in_its_metadata_changes_nothing(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let event = customer_event("evt_1", "customer.created", now(), "cus_A1234567", None);
    assert_received(send(&app, project, &event).await).await;
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stripe_customers").fetch_one(&db).await.expect("count");
    assert_eq!(links, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_deleted_customer_loses_every_link_in_that_project_and_mode(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    insert_customer(&db, project, "user_1", false, "cus_A1234567").await;
    insert_customer(&db, project, "user_2", false, "cus_A1234567").await;
    insert_customer(&db, project, "user_1", true, "cus_A1234567").await;
    insert_customer(&db, project, "user_3", false, "cus_B1234567").await;
    let event = customer_event("evt_1", "customer.deleted", now() + 1, "cus_A1234567", None);
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_1").await, None);
    assert_eq!(link_of(&db, project, "user_2").await, None);
    assert_eq!(link_of(&db, project, "user_3").await.as_deref(), Some("cus_B1234567"));
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_customers WHERE livemode")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(live, 1, "the live-mode link is another mode's");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_event_type_the_service_does_not_use_is_received_and_changes_nothing(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let event = event("evt_1", "invoice.paid", now(), json!({ "id": "in_1", "customer": "cus_A1234567" }));
    assert_received(send(&app, project, &event).await).await;
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stripe_customers").fetch_one(&db).await.expect("count");
    assert_eq!(links, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_delivery_without_a_signature_is_refused_and_writes_nothing(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    assert_refused(deliver(&app, project, "", body, None).await, 400, "Invalid Stripe signature").await;
    assert_eq!(link_of(&db, project, "user_1").await, None);
    assert_eq!(recorded_events(&db).await, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_garbled_signature_header_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    for garbled in ["garbage", "t=,v1=", "v1=abc", &format!("t={},v1=zz", now())] {
        let response = deliver(&app, project, "", body.clone(), Some(garbled.to_owned())).await;
        assert_refused(response, 400, "Invalid Stripe signature").await;
    }
    assert_eq!(recorded_events(&db).await, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_signature_made_with_another_secret_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header("whsec_someone_elses_secret_000000", now(), &body);
    assert_refused(deliver(&app, project, "", body, Some(header)).await, 400, "Invalid Stripe signature")
        .await;
    assert_eq!(link_of(&db, project, "user_1").await, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_body_changed_after_signing_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header(WEBHOOK_SECRET, now(), &body);
    // The same JSON, re-serialised with other whitespace: the signature covers the bytes.
    let reformatted =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).expect("json")).expect("json");
    assert_refused(
        deliver(&app, project, "", reformatted, Some(header)).await,
        400,
        "Invalid Stripe signature",
    )
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_signature_more_than_five_minutes_old_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header(WEBHOOK_SECRET, now() - 330, &body);
    assert_refused(deliver(&app, project, "", body, Some(header)).await, 400, "Invalid Stripe signature")
        .await;
    assert_eq!(recorded_events(&db).await, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_signature_more_than_five_minutes_ahead_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header(WEBHOOK_SECRET, now() + 330, &body);
    assert_refused(deliver(&app, project, "", body, Some(header)).await, 400, "Invalid Stripe signature")
        .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn two_v1_signatures_pass_when_one_of_them_matches(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let t = now();
    let header = format!(
        "t={t},v1={},v1={}",
        hmac_hex("whsec_another_secret_0000000000", t, &body),
        hmac_hex(WEBHOOK_SECRET, t, &body)
    );
    assert_received(deliver(&app, project, "", body, Some(header)).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_header_with_only_a_v0_signature_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let t = now();
    let header = format!("t={t},v0={}", hmac_hex(WEBHOOK_SECRET, t, &body));
    assert_refused(deliver(&app, project, "", body, Some(header)).await, 400, "Invalid Stripe signature")
        .await;
}

/// The project's test-mode secret was changed from `OLD_SECRET` `hours_ago`.
async fn rotated(db: &PgPool, project: Uuid, hours_ago: i32) {
    sqlx::query(
        "UPDATE projects SET stripe_test_webhook_secret_previous = $2,
                stripe_test_webhook_secret_replaced_at = now() - make_interval(hours => $3)
         WHERE id = $1",
    )
    .bind(project)
    .bind(OLD_SECRET)
    .bind(hours_ago)
    .execute(db)
    .await
    .expect("rotated");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_previous_secret_is_accepted_within_24_hours_of_a_change(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    rotated(&db, project, 23).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header(OLD_SECRET, now(), &body);
    assert_received(deliver(&app, project, "", body, Some(header)).await).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_previous_secret_is_refused_24_hours_after_a_change(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    rotated(&db, project, 25).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header(OLD_SECRET, now(), &body);
    assert_refused(deliver(&app, project, "", body, Some(header)).await, 400, "Invalid Stripe signature")
        .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_new_secret_works_at_once_while_the_old_one_is_still_remembered(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    assert_received(send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await).await;
    let new_secret = "whsec_test_rolled_0123456789abcdefgh";
    sqlx::query("UPDATE projects SET stripe_test_webhook_secret = $2 WHERE id = $1")
        .bind(project)
        .bind(new_secret)
        .execute(&db)
        .await
        .expect("rolled");
    let body = serde_json::to_vec(&completed("evt_2", now(), "user_2", "cus_B1234567")).expect("json");
    let header = signature_header(new_secret, now(), &body);
    assert_received(deliver(&app, project, "", body, Some(header)).await).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_live_event_sent_to_the_test_mode_url_is_refused(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let mut event = completed("evt_1", now(), "user_1", "cus_A1234567");
    event["livemode"] = json!(true);
    let response = send(&app, project, &event).await;
    assert_refused(response, 400, "Event mode does not match test_mode").await;
    assert_eq!(recorded_events(&db).await, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn live_mode_events_are_checked_with_the_live_secret_and_link_live_customers(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let mut event = completed("evt_1", now(), "user_1", "cus_L1234567");
    event["livemode"] = json!(true);
    let body = serde_json::to_vec(&event).expect("json");
    let header = signature_header(LIVE_WEBHOOK_SECRET, now(), &body);
    assert_received(deliver(&app, project, "?test_mode=false", body, Some(header)).await).await;
    let live: Option<String> = sqlx::query_scalar(
        "SELECT stripe_customer_id FROM stripe_customers WHERE project_id = $1 AND user_id = 'user_1' AND livemode",
    )
    .bind(project)
    .fetch_optional(&db)
    .await
    .expect("query");
    assert_eq!(live.as_deref(), Some("cus_L1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_unknown_project_is_not_configured(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let response = send(&app, Uuid::new_v4(), &completed("evt_1", now(), "user_1", "cus_A1234567")).await;
    assert_refused(response, 404, "Webhooks are not configured for this project").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_project_id_that_is_not_a_uuid_is_not_configured(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let body = serde_json::to_vec(&completed("evt_1", now(), "user_1", "cus_A1234567")).expect("json");
    let header = signature_header(WEBHOOK_SECRET, now(), &body);
    let response = deliver(&app, "not-a-uuid", "", body, Some(header)).await;
    assert_refused(response, 404, "Webhooks are not configured for this project").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_project_without_a_secret_for_the_mode_is_not_configured(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    let response = send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await;
    assert_refused(response, 404, "Webhooks are not configured for this project").await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_test_mode_that_is_not_a_boolean_is_a_422(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let response = deliver(&app, project, "?test_mode=maybe", b"{}".to_vec(), None).await;
    assert_eq!(response.status(), 422);
    assert_eq!(body(response).await["detail"][0]["type"], "bool_parsing");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_signed_body_that_is_not_an_event_is_an_invalid_payload(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let not_events: [&[u8]; 5] = [
        b"not json",
        br#"{"type": "customer.created", "created": 1, "data": {"object": {}}}"#,
        br#"{"id": "evt_1", "type": "customer.created", "data": {"object": {}}}"#,
        br#"{"id": "evt_1", "type": "customer.created", "created": 1, "data": {}}"#,
        br#"{"id": "evt_1", "created": 1, "data": {"object": {}}}"#,
    ];
    for body in not_events {
        let header = signature_header(WEBHOOK_SECRET, now(), body);
        let response = deliver(&app, project, "", body.to_vec(), Some(header)).await;
        assert_refused(response, 400, "Invalid event payload").await;
    }
    assert_eq!(recorded_events(&db).await, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_body_over_one_mebibyte_is_refused_with_413(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let mut event = completed("evt_1", now(), "user_1", "cus_A1234567");
    event["data"]["object"]["padding"] = json!("x".repeat(1024 * 1024));
    let response = send(&app, project, &event).await;
    assert_eq!(response.status(), 413);
    assert!(body(response).await["detail"].is_string());
    assert_eq!(recorded_events(&db).await, 0);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_event_far_larger_than_the_portals_body_limit_is_received(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let mut event = completed("evt_1", now(), "user_1", "cus_A1234567");
    event["data"]["object"]["line_items"] = json!("x".repeat(200 * 1024));
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_repeated_event_is_applied_once(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let event = completed("evt_1", now() - 5, "user_1", "cus_A1234567");
    assert_received(send(&app, project, &event).await).await;
    // Another service removes the link; the repeat must not bring it back.
    sqlx::query("DELETE FROM stripe_customers").execute(&db).await.expect("deleted");
    assert_received(send(&app, project, &event).await).await;
    assert_eq!(link_of(&db, project, "user_1").await, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn twenty_concurrent_copies_of_an_event_are_applied_once(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let event = completed("evt_1", now(), "user_1", "cus_A1234567");
    let copies = vec![event; 20];
    assert_eq!(send_concurrently(&app, project, &copies).await, vec![200; 20]);
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM stripe_webhook_events").fetch_all(&db).await.expect("rows");
    assert_eq!(outcomes, vec!["applied".to_owned()]);
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
    let text = app.http.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    assert!(text.contains(
        r#"customer_portal_stripe_webhook_events_total{type="checkout.session.completed",outcome="duplicate"} 19"#
    ), "{text}");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn twenty_concurrent_conflicting_events_end_as_delivery_in_created_order_would(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let t = now() - 100;
    // user_1 moves through twenty customers; the newest event names cus_19...
    let mut events: Vec<Value> = (0..20)
        .map(|i| completed(&format!("evt_{i}"), t + i, "user_1", &format!("cus_{i:02}aaaaaaaa")))
        .collect();
    // ...and user_2's customer is deleted after every link to it.
    events.extend((0..10).map(|i| completed(&format!("evt_u2_{i}"), t + i, "user_2", "cus_Daaaaaaaaa")));
    events.push(customer_event("evt_del", "customer.deleted", t + 30, "cus_Daaaaaaaaa", None));
    events.reverse();
    assert_eq!(send_concurrently(&app, project, &events).await, vec![200; events.len()]);
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_19aaaaaaaa"));
    assert_eq!(link_of(&db, project, "user_2").await, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_customer_deleted_before_its_checkout_completed_arrives_is_never_linked(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let t = now();
    let deleted = customer_event("evt_2", "customer.deleted", t, "cus_A1234567", None);
    assert_received(send(&app, project, &deleted).await).await;
    assert_received(send(&app, project, &completed("evt_1", t - 30, "user_1", "cus_A1234567")).await).await;
    assert_eq!(link_of(&db, project, "user_1").await, None);
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_older_update_arriving_after_a_newer_one_is_ignored(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    let t = now();
    let newer = customer_event("evt_2", "customer.updated", t, "cus_B1234567", Some("user_1"));
    let older = customer_event("evt_1", "customer.updated", t - 60, "cus_A1234567", Some("user_1"));
    assert_received(send(&app, project, &newer).await).await;
    assert_received(send(&app, project, &older).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_B1234567"));
    let outcome: String =
        sqlx::query_scalar("SELECT outcome FROM stripe_webhook_events WHERE event_id = 'evt_1'")
            .fetch_one(&db)
            .await
            .expect("recorded");
    assert_eq!(outcome, "stale");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_event_older_than_a_link_another_service_wrote_does_not_override_it(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    insert_customer(&db, project, "user_1", false, "cus_Manual123").await;
    let older = completed("evt_1", now() - 60, "user_1", "cus_A1234567");
    assert_received(send(&app, project, &older).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_Manual123"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_database_being_unreachable_gives_503(db: PgPool) {
    let project = project_with_webhooks(&db).await;
    let proxy = CuttableProxy::start(upstream_of(&db), true).await;
    let app = TestApp::spawn(proxy.pool_for(&db)).await;
    proxy.cut();
    let response = send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await;
    assert_refused(response, 503, "Database unavailable").await;
    proxy.restore();
    assert_received(send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await).await;
    assert_eq!(link_of(&db, project, "user_1").await.as_deref(), Some("cus_A1234567"));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_database_failure_while_applying_gives_503_and_leaves_nothing_half_written(db: PgPool) {
    // The service's pools cancel statements after DATABASE_QUERY_TIMEOUT_MS; so does this one.
    let options = (*db.connect_options()).clone().options([("statement_timeout", "300ms")]);
    let app = TestApp::spawn(sqlx::postgres::PgPoolOptions::new().connect_lazy_with(options)).await;
    let project = project_with_webhooks(&db).await;
    insert_customer(&db, project, "user_1", false, "cus_Old1234567").await;
    sqlx::query("UPDATE stripe_customers SET changed_at = now() - interval '1 hour'")
        .execute(&db)
        .await
        .expect("aged");
    // Another transaction holds the user's row, so applying the event times out midway,
    // after the event was recorded in the same statement.
    let mut blocker = db.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM stripe_customers FOR UPDATE").execute(&mut *blocker).await.expect("locked");
    let event = completed("evt_1", now(), "user_1", "cus_A1234567");
    assert_refused(send(&app, project, &event).await, 503, "Database unavailable").await;
    blocker.rollback().await.expect("rollback");
    assert_eq!(recorded_events(&db).await, 0, "the event was not recorded");

    assert_received(send(&app, project, &event).await).await;
    assert_eq!(
        link_of(&db, project, "user_1").await.as_deref(),
        Some("cus_A1234567"),
        "the retry applies it"
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn deliveries_are_counted_by_type_and_outcome(db: PgPool) {
    let app = TestApp::spawn(db.clone()).await;
    let project = project_with_webhooks(&db).await;
    assert_received(send(&app, project, &completed("evt_1", now(), "user_1", "cus_A1234567")).await).await;
    let other = event("evt_2", "invoice.paid", now(), json!({}));
    assert_received(send(&app, project, &other).await).await;
    let body = b"{}".to_vec();
    assert_eq!(deliver(&app, project, "", body, Some("t=1,v1=00".into())).await.status(), 400);
    assert_eq!(send(&app, Uuid::new_v4(), &other).await.status(), 404);

    let text = app.http.get(app.url("/metrics")).send().await.expect("sent").text().await.expect("text");
    for line in [
        r#"customer_portal_stripe_webhook_events_total{type="checkout.session.completed",outcome="applied"} 1"#,
        r#"customer_portal_stripe_webhook_events_total{type="other",outcome="ignored"} 1"#,
        r#"customer_portal_stripe_webhook_events_total{type="unknown",outcome="bad_signature"} 1"#,
        r#"customer_portal_stripe_webhook_events_total{type="unknown",outcome="not_configured"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn logs_name_the_event_and_its_outcome_but_never_a_secret_a_signature_or_the_payload(db: PgPool) {
    let project = project_with_webhooks(&db).await;
    let mut service = Service::start(&database_url_of(&db), &[("RUST_LOG", "trace")]).await;
    assert!(eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await);
    let event = completed("evt_LogMe123", now(), "user_1", "cus_A1234567");
    let body = serde_json::to_vec(&event).expect("json");
    let t = now();
    let signature = hmac_hex(WEBHOOK_SECRET, t, &body);
    let url = format!("http://127.0.0.1:{}{}", service.port, webhook_path(project));
    let response = reqwest::Client::new()
        .post(&url)
        .header("Stripe-Signature", format!("t={t},v1={signature}"))
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    service.signal("TERM");
    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0));

    let logs = service.log();
    let line =
        logs.lines().find(|l| l.contains("request finished") && l.contains("evt_LogMe123")).expect("a line");
    assert!(line.contains("checkout.session.completed") && line.contains("applied"), "{line}");
    for secret in [WEBHOOK_SECRET, LIVE_WEBHOOK_SECRET, &signature, "jenny.rosen@example.com", "Jenny Rosen"]
    {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

/// Sends every event at once, each signed now, and answers their statuses.
pub async fn send_concurrently(app: &TestApp, project: Uuid, events: &[Value]) -> Vec<u16> {
    let mut sending = tokio::task::JoinSet::new();
    for event in events {
        let body = serde_json::to_vec(event).expect("serializes");
        let request = app
            .http
            .post(app.url(&webhook_path(project)))
            .header("Stripe-Signature", signature_header(WEBHOOK_SECRET, now(), &body))
            .body(body);
        sending.spawn(async move { request.send().await.map_or(0, |r| r.status().as_u16()) });
    }
    sending.join_all().await
}
