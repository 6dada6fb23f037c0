//! Deep links (`flow`), `locale` and the project's portal settings: what reaches Stripe,
//! what is refused, and that a flow never touches another customer's subscription.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::{Mock, ResponseTemplate, matchers};

use crate::support::*;

const OWN_SUBSCRIPTION: &str = "sub_1OwnSubscription";
const FOREIGN_SUBSCRIPTION: &str = "sub_1SomeoneElses";

/// Stripe's subscription object, as far as we read it.
fn subscription_of(id: &str, customer: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({ "id": id, "object": "subscription", "customer": customer, "status": "active" }),
    )
}

/// A seeded app whose Stripe creates sessions and knows the user's and a stranger's subscription.
async fn app_with_subscriptions(db: PgPool) -> (TestApp, String) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path(format!("/v1/subscriptions/{OWN_SUBSCRIPTION}")))
        .respond_with(subscription_of(OWN_SUBSCRIPTION, "cus_test_123"))
        .mount(&app.stripe)
        .await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path(format!("/v1/subscriptions/{FOREIGN_SUBSCRIPTION}")))
        .respond_with(subscription_of(FOREIGN_SUBSCRIPTION, "cus_someone_else"))
        .mount(&app.stripe)
        .await;
    let project = app.seed("user_1").await;
    (app, token(project, "user_1"))
}

/// The form of the one session request Stripe received.
async fn session_form(app: &TestApp) -> HashMap<String, String> {
    let sessions: Vec<_> =
        app.stripe_requests().await.into_iter().filter(|r| r.url.path() == SESSIONS_PATH).collect();
    assert_eq!(sessions.len(), 1, "one session request");
    form(&sessions[0])
}

fn expected(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let base = [("customer", "cus_test_123"), ("return_url", RETURN_URL)];
    base.iter().chain(pairs).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn post(app: &TestApp, token: &str, request: Value) -> reqwest::Response {
    app.post_portal(Some(token), "", request).await
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_body_with_only_return_url_sends_only_customer_and_return_url(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    assert_eq!(post(&app, &token, json!({ "return_url": RETURN_URL })).await.status(), 200);
    assert_eq!(session_form(&app).await, expected(&[]));
    assert_eq!(app.stripe_requests().await.len(), 1, "no subscription lookup without a flow");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_a_payment_method_update_flow(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "payment_method_update" } });
    let response = post(&app, &token, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "portal_url": PORTAL_URL }));
    assert_eq!(session_form(&app).await, expected(&[("flow_data[type]", "payment_method_update")]));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_a_subscription_cancel_flow_on_the_users_own_subscription(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "subscription_cancel", "subscription": OWN_SUBSCRIPTION } });
    assert_eq!(post(&app, &token, request).await.status(), 200);
    assert_eq!(
        session_form(&app).await,
        expected(&[
            ("flow_data[type]", "subscription_cancel"),
            ("flow_data[subscription_cancel][subscription]", OWN_SUBSCRIPTION)
        ])
    );
    let lookup = &app.stripe_requests().await[0];
    assert_eq!(lookup.method.as_str(), "GET");
    assert_eq!(header(lookup, "authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_a_subscription_update_flow_on_the_users_own_subscription(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "subscription_update", "subscription": OWN_SUBSCRIPTION } });
    assert_eq!(post(&app, &token, request).await.status(), 200);
    assert_eq!(
        session_form(&app).await,
        expected(&[
            ("flow_data[type]", "subscription_update"),
            ("flow_data[subscription_update][subscription]", OWN_SUBSCRIPTION)
        ])
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_after_completion_redirect_with_its_url(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let done = "https://app.example.com/billing/done";
    let request = json!({ "return_url": RETURN_URL, "flow": {
        "type": "payment_method_update", "after_completion": { "type": "redirect", "return_url": done } } });
    assert_eq!(post(&app, &token, request).await.status(), 200);
    assert_eq!(
        session_form(&app).await,
        expected(&[
            ("flow_data[type]", "payment_method_update"),
            ("flow_data[after_completion][type]", "redirect"),
            ("flow_data[after_completion][redirect][return_url]", done)
        ])
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_after_completion_hosted_confirmation_with_its_message(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "subscription_cancel", "subscription": OWN_SUBSCRIPTION,
        "after_completion": { "type": "hosted_confirmation", "message": "Sorry to see you go." } } });
    assert_eq!(post(&app, &token, request).await.status(), 200);
    let form = session_form(&app).await;
    assert_eq!(form["flow_data[after_completion][type]"], "hosted_confirmation");
    assert_eq!(
        form["flow_data[after_completion][hosted_confirmation][custom_message]"],
        "Sorry to see you go."
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_after_completion_portal_homepage(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let request = json!({ "return_url": RETURN_URL, "flow": {
        "type": "payment_method_update", "after_completion": { "type": "portal_homepage" } } });
    assert_eq!(post(&app, &token, request).await.status(), 200);
    assert_eq!(session_form(&app).await["flow_data[after_completion][type]"], "portal_homepage");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_the_requested_locale(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    assert_eq!(
        post(&app, &token, json!({ "return_url": RETURN_URL, "locale": "en-GB" })).await.status(),
        200
    );
    assert_eq!(session_form(&app).await, expected(&[("locale", "en-GB")]));
}

async fn set_portal_settings(db: &PgPool, test: Option<&str>, live: Option<&str>, locale: Option<&str>) {
    sqlx::query(
        "UPDATE projects SET stripe_test_portal_configuration = $1, stripe_live_portal_configuration = $2,
         portal_default_locale = $3",
    )
    .bind(test)
    .bind(live)
    .bind(locale)
    .execute(db)
    .await
    .expect("settings stored");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_the_projects_portal_configuration_and_default_locale(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    set_portal_settings(&app.db, Some("bpc_1TestConfig"), Some("bpc_1LiveConfig"), Some("fr")).await;
    assert_eq!(post(&app, &token, json!({ "return_url": RETURN_URL })).await.status(), 200);
    assert_eq!(session_form(&app).await, expected(&[("configuration", "bpc_1TestConfig"), ("locale", "fr")]));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn sends_the_live_portal_configuration_in_live_mode(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    set_portal_settings(&app.db, Some("bpc_1TestConfig"), Some("bpc_1LiveConfig"), None).await;
    let response =
        app.post_portal(Some(&token), "?test_mode=false", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 200);
    let form = session_form(&app).await;
    assert_eq!(form["configuration"], "bpc_1LiveConfig");
    assert_eq!(form["customer"], "cus_live_456");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn the_requests_locale_wins_over_the_projects(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    set_portal_settings(&app.db, None, None, Some("fr")).await;
    assert_eq!(post(&app, &token, json!({ "return_url": RETURN_URL, "locale": "de" })).await.status(), 200);
    assert_eq!(session_form(&app).await, expected(&[("locale", "de")]));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn ignores_a_stored_default_locale_that_stripe_would_refuse(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    set_portal_settings(&app.db, None, None, Some("xx-YY")).await;
    assert_eq!(post(&app, &token, json!({ "return_url": RETURN_URL })).await.status(), 200);
    assert_eq!(session_form(&app).await, expected(&[]));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_flow_on_another_customers_subscription_with_404(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "subscription_cancel", "subscription": FOREIGN_SUBSCRIPTION } });
    let response = post(&app, &token, request).await;
    assert_eq!(response.status(), 404);
    let text = response.text().await.expect("text");
    assert_eq!(text, r#"{"detail":"Subscription not found for user"}"#);
    assert!(!text.contains("cus_someone_else"));
    assert!(
        app.stripe_requests().await.iter().all(|r| r.url.path() != SESSIONS_PATH),
        "no session was opened"
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_404_for_a_subscription_stripe_does_not_know(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path_regex("^/v1/subscriptions/"))
        .respond_with(stripe_error(404, "invalid_request_error", "resource_missing", Some("id")))
        .mount(&app.stripe)
        .await;
    let project = app.seed("user_1").await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "subscription_update", "subscription": "sub_1Unknown" } });
    let response = post(&app, &token(project, "user_1"), request).await;
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Subscription not found for user" }));
    assert_eq!(app.stripe_requests().await.len(), 1, "a 404 is not retried and opens no session");
}

/// Stripe answering the session request itself with the subscription missing (for
/// example, deleted between our check and the session) is the same 404.
#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn maps_stripes_missing_flow_subscription_to_404(db: PgPool) {
    let app = TestApp::spawn(db).await;
    Mock::given(matchers::method("GET"))
        .respond_with(subscription_of(OWN_SUBSCRIPTION, "cus_test_123"))
        .mount(&app.stripe)
        .await;
    Mock::given(matchers::path(SESSIONS_PATH))
        .respond_with(stripe_error(
            400,
            "invalid_request_error",
            "resource_missing",
            Some("flow_data[subscription_cancel][subscription]"),
        ))
        .mount(&app.stripe)
        .await;
    let project = app.seed("user_1").await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "subscription_cancel", "subscription": OWN_SUBSCRIPTION } });
    let response = post(&app, &token(project, "user_1"), request).await;
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Subscription not found for user" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_409_saying_what_to_change_when_the_flow_is_disabled(db: PgPool) {
    let app = TestApp::spawn(db).await;
    Mock::given(matchers::path(SESSIONS_PATH))
        .respond_with(stripe_error(
            400,
            "invalid_request_error",
            "parameter_invalid_empty",
            Some("flow_data[type]"),
        ))
        .mount(&app.stripe)
        .await;
    let project = app.seed("user_1").await;
    let request = json!({ "return_url": RETURN_URL, "flow": { "type": "payment_method_update" } });
    let response = post(&app, &token(project, "user_1"), request).await;
    assert_eq!(response.status(), 409);
    let detail = body(response).await["detail"].as_str().expect("a string").to_owned();
    assert!(detail.contains("enable it in the Customer Portal configuration"), "{detail}");
    assert!(!detail.contains("Stripe's own words"), "Stripe's message is not passed through");
    assert_eq!(app.stripe_requests().await.len(), 1, "not retried");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_409_saying_what_to_change_when_the_configuration_does_not_exist(db: PgPool) {
    let app = TestApp::spawn(db).await;
    Mock::given(matchers::path(SESSIONS_PATH))
        .respond_with(stripe_error(400, "invalid_request_error", "resource_missing", Some("configuration")))
        .mount(&app.stripe)
        .await;
    let project = app.seed("user_1").await;
    set_portal_settings(&app.db, Some("bpc_1Deleted"), None, None).await;
    let response = post(&app, &token(project, "user_1"), json!({ "return_url": RETURN_URL })).await;
    assert_eq!(response.status(), 409);
    let detail = body(response).await["detail"].as_str().expect("a string").to_owned();
    assert!(detail.contains("`customer-portal project set`"), "{detail}");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_after_completion_redirect_on_an_unlisted_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("RETURN_URL_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    app.stripe_creates_sessions().await;
    let project = app.seed("user_1").await;
    let evil = "https://evil.example.net/phish";
    let request = json!({ "return_url": RETURN_URL, "flow": {
        "type": "payment_method_update", "after_completion": { "type": "redirect", "return_url": evil } } });
    let response = post(&app, &token(project, "user_1"), request).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        body(response).await,
        json!({ "detail": [{
            "type": "value_error",
            "loc": ["body", "flow", "payment_method_update", "after_completion", "redirect", "return_url"],
            "msg": "Value error, return_url is not on an allowed origin",
            "input": evil,
            "ctx": { "error": {} }
        }] })
    );
    assert!(app.stripe_requests().await.is_empty());
}

/// One 422 case: the body sent, and the single item expected back.
async fn assert_422(db: PgPool, request: Value, item: Value) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    let project = app.seed("user_1").await;
    let response = post(&app, &token(project, "user_1"), request).await;
    assert_eq!(response.status(), 422);
    assert_eq!(body(response).await, json!({ "detail": [item] }));
    assert!(app.stripe_requests().await.is_empty(), "nothing reached Stripe");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_unknown_flow_type(db: PgPool) {
    let flow = json!({ "type": "delete_everything" });
    assert_422(db, json!({ "return_url": RETURN_URL, "flow": flow }), json!({
        "type": "union_tag_invalid",
        "loc": ["body", "flow"],
        "msg": "Input tag 'delete_everything' found using 'type' does not match any of the expected tags: 'payment_method_update', 'subscription_cancel', 'subscription_update'",
        "input": flow,
        "ctx": { "discriminator": "'type'", "tag": "delete_everything",
                 "expected_tags": "'payment_method_update', 'subscription_cancel', 'subscription_update'" }
    })).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_flow_without_a_type(db: PgPool) {
    let flow = json!({ "subscription": OWN_SUBSCRIPTION });
    assert_422(
        db,
        json!({ "return_url": RETURN_URL, "flow": flow }),
        json!({
            "type": "union_tag_not_found",
            "loc": ["body", "flow"],
            "msg": "Unable to extract tag using discriminator 'type'",
            "input": flow,
            "ctx": { "discriminator": "'type'" }
        }),
    )
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_flow_that_is_not_an_object(db: PgPool) {
    assert_422(
        db,
        json!({ "return_url": RETURN_URL, "flow": "payment_method_update" }),
        json!({
            "type": "model_attributes_type",
            "loc": ["body", "flow"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": "payment_method_update"
        }),
    )
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_subscription_flow_without_a_subscription(db: PgPool) {
    let flow = json!({ "type": "subscription_cancel" });
    assert_422(
        db,
        json!({ "return_url": RETURN_URL, "flow": flow }),
        json!({
            "type": "missing",
            "loc": ["body", "flow", "subscription_cancel", "subscription"],
            "msg": "Field required",
            "input": flow
        }),
    )
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_subscription_id_that_could_reach_another_stripe_path(db: PgPool) {
    let sneaky = "sub_1/../../customers/cus_other";
    let flow = json!({ "type": "subscription_update", "subscription": sneaky });
    assert_422(
        db,
        json!({ "return_url": RETURN_URL, "flow": flow }),
        json!({
            "type": "string_pattern_mismatch",
            "loc": ["body", "flow", "subscription_update", "subscription"],
            "msg": "String should match pattern '^sub_[A-Za-z0-9]+$'",
            "input": sneaky,
            "ctx": { "pattern": "^sub_[A-Za-z0-9]+$" }
        }),
    )
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_an_after_completion_redirect_without_a_url(db: PgPool) {
    let flow = json!({ "type": "payment_method_update", "after_completion": { "type": "redirect", "return_url": "javascript:alert(1)" } });
    assert_422(
        db,
        json!({ "return_url": RETURN_URL, "flow": flow }),
        json!({
            "type": "value_error",
            "loc": ["body", "flow", "payment_method_update", "after_completion", "redirect", "return_url"],
            "msg": "Value error, return_url must be an absolute http or https URL",
            "input": "javascript:alert(1)",
            "ctx": { "error": {} }
        }),
    )
    .await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_hosted_confirmation_message_over_stripes_limit(db: PgPool) {
    let long = "x".repeat(501);
    let flow = json!({ "type": "payment_method_update", "after_completion": { "type": "hosted_confirmation", "message": long } });
    assert_422(db, json!({ "return_url": RETURN_URL, "flow": flow }), json!({
        "type": "string_too_long",
        "loc": ["body", "flow", "payment_method_update", "after_completion", "hosted_confirmation", "message"],
        "msg": "String should have at most 500 characters",
        "input": long,
        "ctx": { "max_length": 500 }
    })).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn rejects_a_locale_stripe_does_not_offer(db: PgPool) {
    let response_item = {
        let expected =
            customer_portal::stripe::PORTAL_LOCALES.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>();
        let (last, rest) = expected.split_last().expect("locales");
        let expected = format!("{} or {last}", rest.join(", "));
        json!({
            "type": "literal_error",
            "loc": ["body", "locale"],
            "msg": format!("Input should be {expected}"),
            "input": "en_GB",
            "ctx": { "expected": expected }
        })
    };
    assert_422(db, json!({ "return_url": RETURN_URL, "locale": "en_GB" }), response_item).await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn reports_every_invalid_field_at_once(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    let request = json!({ "flow": { "type": "nope" }, "locale": 7 });
    let response = app.post_portal(Some(&token(project, "user_1")), "?test_mode=perhaps", request).await;
    assert_eq!(response.status(), 422);
    let items = body(response).await["detail"].as_array().expect("a list").clone();
    let locs: Vec<&Value> = items.iter().map(|item| &item["loc"]).collect();
    assert_eq!(
        locs,
        [
            &json!(["query", "test_mode"]),
            &json!(["body", "return_url"]),
            &json!(["body", "flow"]),
            &json!(["body", "locale"])
        ]
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_null_flow_and_locale_mean_none(db: PgPool) {
    let (app, token) = app_with_subscriptions(db).await;
    let response =
        post(&app, &token, json!({ "return_url": RETURN_URL, "flow": null, "locale": null })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(session_form(&app).await, expected(&[]));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn project_without_settings_still_inserts_with_only_the_contracts_columns(db: PgPool) {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO projects (id, stripe_test_secret_key, stripe_live_secret_key) VALUES ($1, $2, NULL)",
    )
    .bind(id)
    .bind(TEST_KEY)
    .execute(&db)
    .await
    .expect("a row naming only the contract's columns inserts");
}
