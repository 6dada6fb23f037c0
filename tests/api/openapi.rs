//! The OpenAPI document and the docs page, served by the binary itself.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::*;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

async fn document(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/openapi.json")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    body(response).await
}

/// Any change to the API's description shows up here first. After a deliberate change,
/// rewrite the snapshot with `UPDATE_SNAPSHOTS=1 scripts/test openapi` and review the diff.
#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn openapi_document_matches_the_committed_snapshot(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let served = serde_json::to_string_pretty(&document(&app).await).expect("serializes") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &served).expect("snapshot written");
    }
    let committed = std::fs::read_to_string(SNAPSHOT).expect("tests/snapshots/openapi.json exists");
    assert!(committed == served, "GET /openapi.json differs from {SNAPSHOT}; see the test's comment");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn openapi_document_describes_the_portal_route_as_the_contract_does(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let operation = &doc["paths"][PORTAL_ROUTE]["post"];
    assert_eq!(operation["security"], json!([{ "bearer": [] }]));
    assert_eq!(operation["parameters"][0]["name"], "test_mode");
    assert_eq!(operation["parameters"][0]["in"], "query");
    let statuses: Vec<&str> =
        operation["responses"].as_object().expect("responses").keys().map(String::as_str).collect();
    for status in ["200", "401", "404", "413", "422", "429", "502", "503", "504"] {
        assert!(statuses.contains(&status), "{status} is documented");
    }
    let schemes = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(schemes["scheme"], "bearer");
    assert_eq!(doc["components"]["schemas"]["PortalRequestBody"]["required"], json!(["return_url"]));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn docs_page_is_served_from_the_binary_and_reads_the_local_document(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let page = app.http.get(app.url("/docs/")).send().await.expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("text");
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet is relative to /docs/, so nothing comes from a CDN.
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
    let init = app.http.get(app.url("/docs/swagger-initializer.js")).send().await.expect("sent");
    assert!(init.text().await.expect("text").contains("\"url\": \"/openapi.json\""));
    let bundle = app.http.get(app.url("/docs/swagger-ui-bundle.js")).send().await.expect("sent");
    assert_eq!(bundle.status(), 200);
}
