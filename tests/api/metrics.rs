//! `GET /metrics`: what Prometheus scrapes.

use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    response.text().await.expect("text")
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn metrics_count_requests_by_route_template_and_status(db: PgPool) {
    let app = TestApp::spawn(db).await;
    app.stripe_creates_sessions().await;
    let project = app.seed("user_1").await;
    let token = token(project, "user_1");
    for _ in 0..2 {
        let ok = app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
        assert_eq!(ok.status(), 200);
    }
    assert_eq!(app.post_portal(None, "", json!({})).await.status(), 401);
    assert_eq!(app.http.get(app.url("/no/such/route/42")).send().await.expect("sent").status(), 404);

    let text = scrape(&app).await;
    let route = PORTAL_ROUTE;
    assert!(text.contains(&format!(
        r#"customer_portal_http_requests_total{{method="POST",route="{route}",status="200"}} 2"#
    )));
    assert!(text.contains(&format!(
        r#"customer_portal_http_requests_total{{method="POST",route="{route}",status="401"}} 1"#
    )));
    // Unknown paths share one label value, so callers cannot create series.
    assert!(
        text.contains(
            r#"customer_portal_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        )
    );
    assert!(!text.contains("/no/such/route"));
    assert!(text.contains(&format!(
        r#"customer_portal_http_request_duration_seconds_count{{method="POST",route="{route}"}} 3"#
    )));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn metrics_count_stripe_calls_by_outcome_with_their_latency(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    wiremock::Mock::given(wiremock::matchers::path(SESSIONS_PATH))
        .respond_with(session_created())
        .up_to_n_times(1)
        .mount(&app.stripe)
        .await;
    wiremock::Mock::given(wiremock::matchers::path(SESSIONS_PATH))
        .respond_with(stripe_error(401, "invalid_request_error", "api_key_invalid", None))
        .mount(&app.stripe)
        .await;
    let token = token(project, "user_1");
    assert_eq!(app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await.status(), 200);
    assert_eq!(app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await.status(), 502);

    let text = scrape(&app).await;
    assert!(
        text.contains(r#"customer_portal_stripe_requests_total{call="create_session",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"customer_portal_stripe_requests_total{call="create_session",outcome="rejected"} 1"#),
        "{text}"
    );
    assert!(text.contains(
        r#"customer_portal_stripe_request_duration_seconds_count{call="create_session",outcome="ok"} 1"#
    ));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn metrics_report_database_pool_usage(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let text = scrape(&app).await;
    assert!(text.contains(r#"customer_portal_db_pool_connections{state="idle"}"#), "{text}");
    assert!(text.contains(r#"customer_portal_db_pool_connections{state="in_use"}"#), "{text}");
    assert!(text.contains("customer_portal_db_pool_max_connections "), "{text}");
}
