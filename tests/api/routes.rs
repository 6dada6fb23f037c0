//! Everything around the portal route: unknown routes and methods, health, CORS.

use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_404_json_for_an_unknown_route(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/nope")).send().await.expect("sent");
    assert_eq!(response.status(), 404);
    assert_eq!(body(response).await, json!({ "detail": "Not Found" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_405_json_for_a_wrong_method(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url(PORTAL_ROUTE)).send().await.expect("sent");
    assert_eq!(response.status(), 405);
    assert_eq!(body(response).await, json!({ "detail": "Method Not Allowed" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn healthz_answers_while_the_process_runs(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/healthz")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "status": "ok" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn readyz_answers_200_when_the_database_does(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/readyz")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(body(response).await, json!({ "status": "ok" }));
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn every_response_carries_a_request_id(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let response = app.http.get(app.url("/healthz")).send().await.expect("sent");
    assert!(response.headers().get("x-request-id").is_some_and(|v| !v.is_empty()));
    let response =
        app.http.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.expect("sent");
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn allows_a_preflight_with_authorization_from_an_allowed_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(PORTAL_ROUTE))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,content-type")
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example.com");
    let allowed = headers["access-control-allow-headers"].to_str().expect("ascii").to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn gives_no_cors_grant_to_an_unlisted_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(PORTAL_ROUTE))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("sent");
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn grants_cors_on_the_actual_post_from_an_allowed_origin(db: PgPool) {
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = app
        .http
        .post(app.url(PORTAL_ROUTE))
        .header("Origin", "https://app.example.com")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn finishes_in_flight_requests_on_shutdown(db: PgPool) {
    let mut app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    wiremock::Mock::given(wiremock::matchers::path(SESSIONS_PATH))
        .respond_with(session_created().set_delay(std::time::Duration::from_millis(500)))
        .mount(&app.stripe)
        .await;
    let token = token(project, "user_1");

    let in_flight = {
        let (http, url) = (app.http.clone(), app.url(PORTAL_ROUTE));
        tokio::spawn(async move {
            http.post(url).bearer_auth(token).json(&json!({ "return_url": RETURN_URL })).send().await
        })
    };
    while app.stripe_requests().await.is_empty() {
        tokio::task::yield_now().await;
    }
    app.shut_down();

    let response = in_flight.await.expect("joined").expect("answered");
    assert_eq!(response.status(), 200);
    assert!(app.server.await.expect("joined").is_ok());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn stops_waiting_for_in_flight_requests_when_the_grace_period_ends(db: PgPool) {
    let mut app =
        TestApp::spawn_with(db, &[("SHUTDOWN_GRACE_SECONDS", "1"), ("STRIPE_TIMEOUT_MS", "30000")]).await;
    let project = app.seed("user_1").await;
    wiremock::Mock::given(wiremock::matchers::path(SESSIONS_PATH))
        .respond_with(session_created().set_delay(std::time::Duration::from_secs(20)))
        .mount(&app.stripe)
        .await;
    let token = token(project, "user_1");
    let (http, url) = (app.http.clone(), app.url(PORTAL_ROUTE));
    let _in_flight = tokio::spawn(async move {
        http.post(url).bearer_auth(token).json(&json!({ "return_url": RETURN_URL })).send().await
    });
    while app.stripe_requests().await.is_empty() {
        tokio::task::yield_now().await;
    }
    let asked = std::time::Instant::now();
    app.shut_down();

    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), &mut app.server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "serve returned {stopped:?}");
    let waited = asked.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "stopped after {waited:?}, before the grace period"
    );
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn refuses_new_connections_once_shutting_down(db: PgPool) {
    let mut app = TestApp::spawn(db).await;
    app.shut_down();
    (&mut app.server).await.expect("joined").expect("served");

    assert!(tokio::net::TcpStream::connect(app.addr).await.is_err());
}

/// A client may close its sending side once the request is out (`shutdown(SHUT_WR)`,
/// `curl --http1.1` behind some proxies); it must still get its answer.
#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn answers_a_client_that_stops_sending_after_its_request(db: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    wiremock::Mock::given(wiremock::matchers::path(SESSIONS_PATH))
        .respond_with(session_created().set_delay(std::time::Duration::from_millis(200)))
        .mount(&app.stripe)
        .await;
    let body = json!({ "return_url": RETURN_URL }).to_string();
    let request = format!(
        "POST {PORTAL_ROUTE} HTTP/1.1\r\nHost: portal\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token(project, "user_1"),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connected");
    stream.write_all(request.as_bytes()).await.expect("sent");
    stream.shutdown().await.expect("write side closed");

    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read to the end");
    assert!(answer.starts_with("HTTP/1.1 200"), "got {answer}");
    assert!(answer.contains(PORTAL_URL), "got {answer}");
}

/// Slowloris: a client that opens a connection and trickles its headers must not hold
/// it for ever.
#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn closes_a_connection_that_does_not_finish_its_headers_in_time(db: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::spawn_with(db, &[("HTTP_HEADER_TIMEOUT_SECONDS", "1")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connected");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n").await.expect("sent part");

    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was still open after 5 s");
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_millis(900), "closed after {waited:?}, before the timeout");
}
