//! The service through PgBouncer in transaction mode (`DATABASE_PGBOUNCER=true`): a real
//! pgbouncer (Debian's 1.18, no prepared statements in that mode), started here with
//! two server connections for many client ones, so consecutive transactions of one
//! client land on different server connections.

use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;
use wiremock::MockServer;

use crate::support::*;

/// A pgbouncer on a loopback port in front of `upstream`, stopped when dropped.
struct PgBouncer {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    async fn start(upstream: (String, u16), pool_mode: &str) -> Self {
        let binary = std::env::var("PGBOUNCER").unwrap_or_else(|_| "pgbouncer".into());
        let port = closed_port().await;
        let dir = std::env::temp_dir().join(format!("cp-pgbouncer-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (host, upstream_port) = upstream;
        let ini = format!(
            "[databases]\n* = host={host} port={upstream_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
             pool_mode = {pool_mode}\ndefault_pool_size = 2\nmax_client_conn = 200\nlogfile = {log}\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).expect("ini");
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("users");
        let mut command = Command::new(&binary);
        // pgbouncer refuses to run as root; it drops to postgres when told to.
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            command.args(["-u", "postgres"]);
            let _ = Command::new("chmod").args(["-R", "a+rwX"]).arg(&dir).status();
        }
        let child = command.arg(dir.join("pgbouncer.ini")).spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {binary} ({e}): install pgbouncer (scripts/test does, as root) or set PGBOUNCER"
            )
        });
        let listening = eventually(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        assert!(listening, "pgbouncer did not listen on {port}");
        Self { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// `db`'s database, through this pgbouncer.
    fn url_for(&self, db: &PgPool) -> String {
        let database = db.connect_options().get_database().unwrap_or("postgres").to_owned();
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary behind `bouncer`, with a fake Stripe, limits off, four lookup loaders.
async fn service_through(
    bouncer: &PgBouncer,
    db: &PgPool,
    stripe: &MockServer,
    extra: &[(&str, &str)],
) -> Service {
    let url = bouncer.url_for(db);
    let direct = database_url_of(db);
    let mut vars = vec![
        ("DATABASE_DIRECT_URL", direct.as_str()),
        ("STRIPE_API_BASE", stripe.uri().leak() as &str),
        ("RATE_LIMIT_USER_PER_MINUTE", "0"),
        ("RATE_LIMIT_PROJECT_PER_MINUTE", "0"),
        ("STRIPE_BUDGET_TEST_PER_SECOND", "0"),
        ("DATABASE_LOOKUP_CONNECTIONS", "4"),
    ];
    vars.extend_from_slice(extra);
    let service = Service::start(&url, &vars).await;
    let ready =
        eventually(Duration::from_secs(20), || async { service.status("/readyz").await == 200 }).await;
    assert!(ready, "never ready: {}", service.log());
    service
}

/// `total` portal requests, `concurrency` at a time, spread over `users`; their statuses.
async fn burst(port: u16, project: Uuid, users: &[&str], total: usize, concurrency: usize) -> Vec<u16> {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{PORTAL_ROUTE}");
    let mut statuses = Vec::new();
    let mut running = JoinSet::new();
    for i in 0..total {
        if running.len() >= concurrency {
            statuses.push(running.join_next().await.expect("running").expect("joined"));
        }
        let request = http
            .post(&url)
            .bearer_auth(token(project, users[i % users.len()]))
            .json(&json!({ "return_url": RETURN_URL }));
        running.spawn(async move { request.send().await.map_or(0, |r| r.status().as_u16()) });
    }
    while let Some(status) = running.join_next().await {
        statuses.push(status.expect("joined"));
    }
    statuses
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn serves_through_pgbouncer_in_transaction_mode(db: PgPool) {
    let bouncer = PgBouncer::start(upstream_of(&db), "transaction").await;
    let stripe = fake_stripe_creating_sessions().await;
    let project = insert_project(&db, Some(TEST_KEY), Some(LIVE_KEY)).await;
    for user in ["user_1", "user_2", "user_3"] {
        insert_customer(&db, project, user, false, &format!("cus_{user}")).await;
    }
    let service = service_through(&bouncer, &db, &stripe, &[("DATABASE_PGBOUNCER", "true")]).await;

    let statuses = burst(service.port, project, &["user_1", "user_2", "user_3", "nobody"], 400, 64).await;

    let ok = statuses.iter().filter(|s| **s == 200).count();
    let not_found = statuses.iter().filter(|s| **s == 404).count();
    assert_eq!((ok, not_found), (300, 100), "every answer right: {:?}\n{}", statuses, service.log());
    assert!(!service.log().contains("ERROR"), "{}", service.log());
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn without_the_setting_pgbouncer_in_transaction_mode_refuses_the_service(db: PgPool) {
    let bouncer = PgBouncer::start(upstream_of(&db), "transaction").await;
    let url = bouncer.url_for(&db);
    let service = Service::start(&url, &[("SKIP_MIGRATIONS", "true")]).await;

    let refused = eventually(Duration::from_secs(10), || async {
        service.status("/readyz").await == 503 && bouncer.log().contains("unsupported startup parameter")
    })
    .await;
    assert!(refused, "sqlx's startup options are refused: {}", bouncer.log());
}
