//! The binary as an operator runs it: start-up order, SIGTERM, and the dev token.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

struct Service {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Service {
    async fn start(database_url: &str) -> Self {
        let port = closed_port().await;
        let log = std::env::temp_dir().join(format!("customer-portal-test-{}.log", Uuid::new_v4()));
        let child = Command::new(env!("CARGO_BIN_EXE_customer-portal"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("binary starts");
        Self { child, port, log }
    }

    async fn status(&self, path: &str) -> u16 {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        reqwest::get(url).await.map_or(0, |r| r.status().as_u16())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.expect("kill runs").success());
    }

    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[sqlx::test(migrations = false)]
async fn serve_migrates_becomes_ready_and_exits_0_on_sigterm(db: PgPool) {
    let mut service = Service::start(&database_url_of(&db)).await;
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
async fn serve_waits_for_a_database_that_is_not_up_yet(db: PgPool) {
    let proxy = CuttableProxy::start(upstream_of(&db), false).await;
    let url =
        database_url_of(&db).replace(&format!(":{}/", upstream_of(&db).1), &format!(":{}/", proxy.port));
    let mut service = Service::start(&url).await;

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
