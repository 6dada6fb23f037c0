//! The binary as an operator runs it: start-up order, SIGTERM, and the dev token.

use std::{process::Command, time::Duration};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

#[sqlx::test(migrations = false)]
async fn serve_migrates_becomes_ready_and_exits_0_on_sigterm(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db), &[]).await;
    assert!(
        eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await,
        "never ready: {}",
        service.log()
    );

    service.signal("TERM");

    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0), "{}", service.log());
    assert!(service.log().contains("shutting down"));
}

#[sqlx::test(migrations = false)]
async fn serve_runs_worker_threads_runtimes_and_stops_them_all_on_sigterm(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db), &[("WORKER_THREADS", "3")]).await;
    assert!(
        eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await,
        "never ready: {}",
        service.log()
    );
    assert!(service.log().contains("threads=3"), "{}", service.log());
    for _ in 0..12 {
        assert_eq!(service.status("/healthz").await, 200);
    }

    service.signal("TERM");

    assert_eq!(service.exit_code(Duration::from_secs(10)).await, Some(0), "{}", service.log());
}

#[sqlx::test(migrations = false)]
async fn more_worker_threads_than_lookup_connections_share_them_and_every_request_is_answered(db: PgPool) {
    let stripe = fake_stripe_creating_sessions().await;
    let vars = [
        ("WORKER_THREADS", "4"),
        ("DATABASE_MAX_CONNECTIONS", "2"),
        ("DATABASE_LOOKUP_CONNECTIONS", "1"),
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "500"),
        ("RATE_LIMIT_USER_PER_MINUTE", "0"),
        ("RATE_LIMIT_PROJECT_PER_MINUTE", "0"),
        ("STRIPE_BUDGET_TEST_PER_SECOND", "0"),
        ("STRIPE_API_BASE", &stripe.uri()),
    ];
    let service = Service::start(&database_url_of(&db), &vars).await;
    assert!(
        eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await,
        "never ready: {}",
        service.log()
    );
    let project = insert_project(&db, Some(TEST_KEY), None).await;
    insert_customer(&db, project, "user_1", false, "cus_test_1").await;

    // Each request on a connection of its own, so the kernel spreads them over the threads.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let url = format!("http://127.0.0.1:{}{PORTAL_ROUTE}", service.port);
        let request = reqwest::Client::new().post(url).bearer_auth(token(project, "user_1"));
        requests.spawn(async move {
            let response = request.json(&serde_json::json!({ "return_url": RETURN_URL })).send().await;
            response.map_or(0, |r| r.status().as_u16())
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("joined"), 200, "{}", service.log());
    }
}

#[sqlx::test(migrations = false)]
async fn with_one_worker_thread_a_second_copy_on_the_same_port_fails_to_start(db: PgPool) {
    let first = Service::start(&database_url_of(&db), &[("WORKER_THREADS", "1")]).await;
    assert!(
        eventually(Duration::from_secs(20), || async { first.status("/readyz").await == 200 }).await,
        "never ready: {}",
        first.log()
    );

    let second = Command::new(env!("CARGO_BIN_EXE_customer-portal"))
        .arg("serve")
        .env("DATABASE_URL", database_url_of(&db))
        .env("JWT_SECRET", JWT_SECRET)
        .env("LISTEN_ADDR", format!("127.0.0.1:{}", first.port))
        .env("WORKER_THREADS", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("binary runs");

    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("LISTEN_ADDR: cannot listen on"), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn serve_waits_for_a_database_that_is_not_up_yet(db: PgPool) {
    let proxy = CuttableProxy::start(upstream_of(&db), false).await;
    let url =
        database_url_of(&db).replace(&format!(":{}/", upstream_of(&db).1), &format!(":{}/", proxy.port));
    let mut service = Service::start(&url, &[]).await;

    assert!(
        eventually(Duration::from_secs(10), || async {
            service.log().contains("database not reachable yet")
        })
        .await,
        "says it is waiting: {}",
        service.log()
    );
    assert_eq!(service.exit_code(Duration::from_millis(100)).await, None, "still running");

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await,
        "ready once the database is: {}",
        service.log()
    );
}

#[test]
fn token_command_mints_a_token_the_service_accepts() {
    let project = Uuid::new_v4();
    let output = Command::new(env!("CARGO_BIN_EXE_customer-portal"))
        .args(["token", "--project", &project.to_string(), "--user", "user_1", "--ttl", "120"])
        .env_clear()
        .env("JWT_SECRET", JWT_SECRET)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).expect("utf8");

    let mut validation = jsonwebtoken::Validation::default();
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("valid HS256 token")
    .claims;
    assert_eq!(claims["sub"], "user_1");
    assert_eq!(claims["project_id"], project.to_string());
    let ttl = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(ttl, 120);
}
