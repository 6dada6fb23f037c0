//! Tokens, Stripe keys and portal URLs never reach a log line, at any level.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use serde_json::json;
use sqlx::PgPool;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn logs_never_contain_the_token_the_key_or_the_portal_url(db: PgPool) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    // sqlx::test runs on one thread, so the server's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn(db).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let token = token(project, "user_1");
    let ok = app.post_portal(Some(&token), "", json!({ "return_url": RETURN_URL })).await;
    assert_eq!(ok.status(), 200);
    let expired = {
        let mut c = claims(project, "user_1");
        c["exp"] = json!(now() - 3600);
        sign(&c)
    };
    app.post_portal(Some(&expired), "", json!({ "return_url": RETURN_URL })).await;

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logs.contains("request finished"), "the request log is captured: {logs}");
    for secret in [token.as_str(), expired.as_str(), TEST_KEY, LIVE_KEY, PORTAL_URL] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
