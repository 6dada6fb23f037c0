//! Property test of the whole request path: no query, body, header or token, however
//! malformed, makes the service panic or answer 500. Bounded by `PROPTEST_CASES`
//! (256 by default), so it runs in CI in seconds.

use proptest::prelude::*;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, postgres::PgPoolOptions};
use uuid::Uuid;

use crate::support::*;

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9_=&%+. -]{0,40}".prop_map(|q| format!("?{q}")),
        "(true|false|1|0|yes|no|maybe|TRUE|%00|%ff|)".prop_map(|v| format!("?test_mode={v}")),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let url = prop_oneof![
        Just(RETURN_URL.to_owned()),
        "https?://[a-z.]{0,20}(:[0-9]{1,6})?/[ -~]{0,20}",
        "[ -~]{0,30}",
        "\\PC{0,20}",
    ];
    let json_body = (url, any::<bool>()).prop_map(|(u, wrap)| {
        let value = serde_json::json!({ "return_url": u });
        if wrap { serde_json::json!([value]) } else { value }.to_string().into_bytes()
    });
    prop_oneof![
        json_body,
        "[{}\\[\\]\":, a-z0-9\\\\]{0,60}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..200),
        Just(vec![b'x'; 9000]),
    ]
}

fn authorization(valid: String) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(format!("Bearer {valid}"))),
        "[ -~]{0,80}".prop_map(Some),
        (0..valid.len(), any::<u8>()).prop_map(move |(i, b)| {
            let mut mutated = valid.clone().into_bytes();
            mutated[i] = b'!'.max(b % 127);
            Some(format!("Bearer {}", String::from_utf8_lossy(&mutated)))
        }),
    ]
}

#[test]
fn no_request_makes_the_portal_panic_or_answer_500() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin_url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test sets it)");
    let name = format!("cp_fuzz_{}", Uuid::new_v4().simple());
    let (app, project) = rt.block_on(async {
        let mut admin = PgConnection::connect(&admin_url).await.expect("admin connection");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        let url = format!("{}/{name}", admin_url.rsplit_once('/').expect("url has a path").0);
        let db = PgPoolOptions::new().connect(&url).await.expect("pool");
        customer_portal::db::MIGRATOR.run(&db).await.expect("migrate");
        let app = TestApp::spawn_with(
            db,
            &[("RATE_LIMIT_USER_PER_MINUTE", "0"), ("RATE_LIMIT_PROJECT_PER_MINUTE", "0")],
        )
        .await;
        app.stripe_creates_sessions().await;
        let project = app.seed("user_1").await;
        (app, project)
    });
    let valid = token(project, "user_1");

    let result = proptest::test_runner::TestRunner::new(ProptestConfig::default()).run(
        &(query(), body(), authorization(valid), any::<bool>()),
        |(query, body, auth, json_type)| {
            let (status, text) = rt.block_on(async {
                let mut request = app.http.post(app.url(&format!("{PORTAL_ROUTE}{query}"))).body(body);
                if let Some(auth) = auth {
                    request = request.header("Authorization", auth);
                }
                if json_type {
                    request = request.header("Content-Type", "application/json");
                }
                let response = request.send().await.expect("the service answers");
                (response.status().as_u16(), response.text().await.expect("body"))
            });
            prop_assert!(status < 500, "answered {status}: {text}");
            let parsed: Value = serde_json::from_str(&text).expect("every answer is JSON");
            prop_assert!(parsed.get("detail").is_some() || parsed.get("portal_url").is_some(), "{text}");
            Ok(())
        },
    );

    rt.block_on(async {
        app.db.close().await;
        if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
            let _ = admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
        }
    });
    result.expect("no input breaks the service");
}
