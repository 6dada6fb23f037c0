//! Builds the app against a test database and a fake Stripe, and speaks to it over HTTP.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use customer_portal::{AppState, app, config::Config, serve, server};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use uuid::Uuid;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256!";
pub const TEST_KEY: &str = "sk_test_51TESTKEYabcdefghijklmnop";
pub const LIVE_KEY: &str = "sk_live_51LIVEKEYabcdefghijklmnop";
pub const PORTAL_URL: &str = "https://billing.stripe.com/p/session/test_YWNjdF8xTUZ";
pub const SESSIONS_PATH: &str = "/v1/billing_portal/sessions";
pub const RETURN_URL: &str = "https://app.example.com/account";
pub const PORTAL_ROUTE: &str = customer_portal::PORTAL_PATH;

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub stripe: MockServer,
    pub db: PgPool,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: JoinHandle<std::io::Result<()>>,
}

/// Settings every test starts from: a fake Stripe, fast retries, a short deadline.
fn base_vars(stripe_uri: &str) -> HashMap<String, String> {
    let database_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    [
        ("DATABASE_URL", database_url.as_str()),
        ("JWT_SECRET", JWT_SECRET),
        ("STRIPE_API_BASE", stripe_uri),
        ("STRIPE_RETRY_BACKOFF_MS", "10"),
        ("STRIPE_TIMEOUT_MS", "2000"),
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "500"),
        ("SHUTDOWN_GRACE_SECONDS", "5"),
        // Tests send bursts to one project; the Stripe budget has tests of its own.
        ("STRIPE_BUDGET_TEST_PER_SECOND", "0"),
        ("STRIPE_BUDGET_LIVE_PER_SECOND", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl TestApp {
    pub async fn spawn(db: PgPool) -> Self {
        Self::spawn_with(db, &[]).await
    }

    /// Starts the service with extra (or overriding) environment settings.
    pub async fn spawn_with(db: PgPool, vars: &[(&str, &str)]) -> Self {
        let stripe = MockServer::start().await;
        let mut all = base_vars(&stripe.uri());
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(&all).expect("test configuration is valid");
        let options =
            server::ServeOptions { grace: config.shutdown_grace, header_timeout: config.header_timeout };
        let state = AppState::new(config, db.clone()).expect("state builds");

        let listener = server::listen(([127, 0, 0, 1], 0).into()).expect("listen on loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app(state),
            async {
                let _ = rx.await;
            },
            options,
        ));
        Self { addr, http: reqwest::Client::new(), stripe, db, shutdown: Some(tx), server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM's equivalent: stop accepting, finish in-flight requests.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// `POST` the portal route with a token, a query string and a JSON body.
    pub async fn post_portal(&self, token: Option<&str>, query: &str, body: Value) -> reqwest::Response {
        let mut request = self.http.post(self.url(&format!("{PORTAL_ROUTE}{query}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.json(&body).send().await.expect("request sent")
    }

    /// A project with both keys and a test-mode and live-mode customer for `user`.
    pub async fn seed(&self, user: &str) -> Uuid {
        let project = insert_project(&self.db, Some(TEST_KEY), Some(LIVE_KEY)).await;
        insert_customer(&self.db, project, user, false, "cus_test_123").await;
        insert_customer(&self.db, project, user, true, "cus_live_456").await;
        project
    }

    /// Stripe answers every session request with a portal URL.
    pub async fn stripe_creates_sessions(&self) {
        creates_sessions(&self.stripe).await;
    }

    /// Stripe answers every session request with `response`.
    pub async fn stripe_sessions_answer(&self, response: ResponseTemplate) {
        self.sessions_mock(response).mount(&self.stripe).await;
    }

    /// Stripe answers the first session request with `response`, later ones as mounted next.
    pub async fn stripe_sessions_answer_once(&self, response: ResponseTemplate) {
        self.sessions_mock(response).up_to_n_times(1).mount(&self.stripe).await;
    }

    /// Stripe answers session requests with `response`, and must be asked exactly `times`.
    pub async fn stripe_sessions_answer_exactly(&self, response: ResponseTemplate, times: u64) {
        self.sessions_mock(response).expect(times).mount(&self.stripe).await;
    }

    fn sessions_mock(&self, response: ResponseTemplate) -> Mock {
        Mock::given(matchers::path(SESSIONS_PATH)).respond_with(response)
    }

    pub async fn stripe_requests(&self) -> Vec<wiremock::Request> {
        self.stripe.received_requests().await.unwrap_or_default()
    }
}

/// A fake Stripe of its own, for a test that runs the real binary, answering every
/// session request with a portal URL.
pub async fn fake_stripe_creating_sessions() -> MockServer {
    let stripe = MockServer::start().await;
    creates_sessions(&stripe).await;
    stripe
}

async fn creates_sessions(stripe: &MockServer) {
    Mock::given(matchers::method("POST"))
        .and(matchers::path(SESSIONS_PATH))
        .respond_with(session_created())
        .mount(stripe)
        .await;
}

pub fn session_created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "bps_1Test",
        "object": "billing_portal.session",
        "customer": "cus_test_123",
        "livemode": false,
        "return_url": RETURN_URL,
        "url": PORTAL_URL,
    }))
}

/// A Stripe error body as Stripe writes it.
pub fn stripe_error(status: u16, kind: &str, code: &str, param: Option<&str>) -> ResponseTemplate {
    let mut error = json!({ "type": kind, "code": code, "message": "Stripe's own words, not for end users" });
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    ResponseTemplate::new(status)
        .insert_header("Request-Id", "req_test123")
        .set_body_json(json!({ "error": error }))
}

pub async fn insert_project(db: &PgPool, test_key: Option<&str>, live_key: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    // Only the contract's columns, as the platform's other services write rows.
    sqlx::query(
        "INSERT INTO projects (id, stripe_test_secret_key, stripe_live_secret_key) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(test_key)
    .bind(live_key)
    .execute(db)
    .await
    .expect("insert project");
    id
}

pub async fn insert_customer(db: &PgPool, project: Uuid, user: &str, livemode: bool, customer: &str) {
    sqlx::query(
        "INSERT INTO stripe_customers (project_id, user_id, livemode, stripe_customer_id) VALUES ($1, $2, $3, $4)",
    )
    .bind(project)
    .bind(user)
    .bind(livemode)
    .bind(customer)
    .execute(db)
    .await
    .expect("insert customer");
}

pub fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims of a valid token for `user` in `project`.
pub fn claims(project: Uuid, user: &str) -> Value {
    json!({ "sub": user, "project_id": project.to_string(), "exp": now() + 600, "iat": now() })
}

pub fn sign(claims: &Value) -> String {
    sign_with(&Header::default(), claims, JWT_SECRET)
}

pub fn sign_with(header: &Header, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret.as_bytes())).expect("token signs")
}

pub fn token(project: Uuid, user: &str) -> String {
    sign(&claims(project, user))
}

/// The form fields of a request Stripe received.
pub fn form(request: &wiremock::Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

pub fn header<'a>(request: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// A port on loopback that nothing listens on.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore, to play a
/// database that goes away and comes back.
pub struct CuttableProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    pub async fn start(upstream: (String, u16), up: bool) -> Self {
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let proxy =
            Self { port, up: Arc::new(AtomicBool::new(up)), connections: Arc::new(Mutex::new(Vec::new())) };
        let (flag, connections) = (proxy.up.clone(), proxy.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection closed
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().expect("lock").push(task.abort_handle());
            }
        });
        proxy
    }

    /// Refuses new connections and breaks the open ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A pool reaching `db`'s database through this proxy.
    pub fn pool_for(&self, db: &PgPool) -> PgPool {
        let options = (*db.connect_options()).clone().host("127.0.0.1").port(self.port);
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy_with(options)
    }
}

/// Where `db`'s server listens.
pub fn upstream_of(db: &PgPool) -> (String, u16) {
    let options = db.connect_options();
    (options.get_host().to_owned(), options.get_port())
}

/// `db`'s database as a URL, for running the binary against it.
pub fn database_url_of(db: &PgPool) -> String {
    let options = db.connect_options();
    let (host, port) = upstream_of(db);
    format!(
        "postgres://{}@{host}:{port}/{}",
        options.get_username(),
        options.get_database().unwrap_or("postgres")
    )
}

/// The Redis the shared-limit tests use: `REDIS_TEST_URL`, else the machine's own.
pub fn redis_url() -> String {
    std::env::var("REDIS_TEST_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Redis's `host:port`, for a proxy in front of it.
pub fn redis_upstream() -> (String, u16) {
    let url = url::Url::parse(&redis_url()).expect("REDIS_TEST_URL is a URL");
    (url.host_str().unwrap_or("127.0.0.1").to_owned(), url.port().unwrap_or(6379))
}

/// A key prefix no other test (nor run) shares.
pub fn unique_prefix() -> String {
    format!("cp-test-{}", Uuid::new_v4())
}

/// A loopback listener that accepts connections and never answers: a stalled server.
pub async fn stalled_port() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (port, task)
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The real binary, serving on a loopback port, its stderr in a file.
pub struct Service {
    child: std::process::Child,
    pub port: u16,
    log: std::path::PathBuf,
}

impl Service {
    pub async fn start(database_url: &str, vars: &[(&str, &str)]) -> Self {
        let port = closed_port().await;
        let log = std::env::temp_dir().join(format!("customer-portal-test-{}.log", Uuid::new_v4()));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_customer-portal"))
            .arg("serve")
            .envs(vars.iter().copied())
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", vars.iter().find(|(k, _)| *k == "RUST_LOG").map_or("info", |(_, v)| v))
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("binary starts");
        Self { child, port, log }
    }

    pub async fn status(&self, path: &str) -> u16 {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        reqwest::get(url).await.map_or(0, |r| r.status().as_u16())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(status.expect("kill runs").success());
    }

    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
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
