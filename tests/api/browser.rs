//! The "Manage billing" page in headless Chromium: see examples/manage-billing/.
//!
//! curl cannot show that a browser accepts our CORS answers or that the flow ends on the
//! portal, so these drive Debian's `chromium` through `chromedriver`. The page is served
//! on `http://localhost:P`, the service on `http://127.0.0.1:S` (another origin), and the
//! fake Stripe's session URL is a page on `http://127.0.0.1:P` (a third origin).

use std::{os::unix::process::CommandExt, process::Child, time::Duration};

use axum::{Router, http::header, response::Html, routing::get};
use fantoccini::{Client, ClientBuilder, Locator, wd::WebDriverCompatibleCommand};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use wiremock::{Mock, ResponseTemplate, matchers};

use crate::support::*;

const MISSING: &str = "the browser tests need Debian's `chromium` and `chromium-driver` packages \
    (apt-get install --no-install-recommends chromium chromium-driver; scripts/test installs them \
    when run as root), or CHROMEDRIVER=/path/to/chromedriver and CHROME_BIN=/path/to/chrome";
const PAGE: &str = include_str!("../../examples/manage-billing/index.html");
const SCRIPT: &str = include_str!("../../examples/manage-billing/manage-billing.js");
const PORTAL_PAGE: &str = "<!doctype html><title>Billing portal</title><h1>Billing portal (fake Stripe)</h1>";
const SESSION_PATH: &str = "/p/session/test_browser";
const SCREENSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/manage-billing.png");
/// Longest wait for anything the browser does; a broken browser fails a test, not CI's clock.
const WAIT: Duration = Duration::from_secs(15);

/// Browsers run one at a time: each is a few hundred MB and a core's worth of start-up,
/// and the rest of the suite's timing-sensitive tests share the machine.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn clicking_the_button_lands_on_the_portal_page(db: PgPool) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let app = TestApp::spawn_with(
        db,
        &[
            ("CORS_ALLOWED_ORIGINS", &site.page_origin()),
            ("RETURN_URL_ALLOWED_ORIGINS", &site.page_origin()),
            ("STRIPE_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    let project = app.seed("user_1").await;
    // Slow enough that the busy state is on screen when the screenshot is taken.
    Mock::given(matchers::method("POST"))
        .and(matchers::path(SESSIONS_PATH))
        .respond_with(session_at(&site.portal_url()).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&app.stripe)
        .await;
    let browser = Browser::open().await;

    browser.load(&site.page_url(&app, &token(project, "user_1"))).await;
    browser.click_manage_billing().await;

    let busy = browser.wait_for_css("#manage-billing[aria-busy=true]:disabled").await;
    let busy = busy.text().await.expect("button text");
    assert_eq!(busy, "Opening billing portal…");
    let png = browser.client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var("UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        std::fs::write(SCREENSHOT, &png).expect("write docs/manage-billing.png");
    }

    let portal = url::Url::parse(&site.portal_url()).expect("portal URL");
    browser.client.wait().at_most(WAIT).for_url(&portal).await.expect("the browser reaches the portal page");
    let heading = browser.wait_for_css("h1").await.text().await.expect("heading");
    assert_eq!(heading, "Billing portal (fake Stripe)");

    let sent = form(&app.stripe_requests().await[0]);
    assert_eq!(sent["customer"], "cus_test_123");
    // The page took the token out of its address before it became the return_url.
    assert_eq!(sent["return_url"], format!("{}/?api={}", site.page_origin(), encoded(&app.url(""))));
    println!("browser showed {busy:?}, then {portal} ({heading:?}); return_url was {}", sent["return_url"]);
    browser.close().await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_page_on_an_origin_that_is_not_allowed_is_blocked_by_the_browser(db: PgPool) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let project = app.seed("user_1").await;
    app.stripe_creates_sessions().await;
    let browser = Browser::open().await;

    let shown = browser.error_shown_for(&site.page_url(&app, &token(project, "user_1"))).await;

    assert_eq!(shown, "Could not reach the billing service. Please try again.");
    let console = browser.console().await;
    assert!(console.contains("blocked by CORS policy") && console.contains("preflight"), "{console}");
    println!("browser showed {shown:?}; its console: {console}");
    // The preflight failed, so the POST was never sent and Stripe never asked.
    assert!(app.stripe_requests().await.is_empty());
    browser.close().await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn a_user_without_a_customer_sees_the_404_detail_on_the_page(db: PgPool) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", &site.page_origin())]).await;
    let project = app.seed("user_1").await;
    let browser = Browser::open().await;

    let shown = browser.error_shown_for(&site.page_url(&app, &token(project, "nobody"))).await;

    assert_eq!(shown, "No Stripe customer found for user");
    println!("browser showed {shown:?}");
    assert!(app.stripe_requests().await.is_empty());
    browser.close().await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn an_expired_token_shows_the_401_detail_on_the_page(db: PgPool) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let app = TestApp::spawn_with(db, &[("CORS_ALLOWED_ORIGINS", &site.page_origin())]).await;
    let project = app.seed("user_1").await;
    let mut expired = claims(project, "user_1");
    expired["exp"] = json!(now() - 3600);
    let browser = Browser::open().await;

    let shown = browser.error_shown_for(&site.page_url(&app, &sign(&expired))).await;

    assert_eq!(shown, "Token has expired");
    println!("browser showed {shown:?}");
    browser.close().await;
}

#[sqlx::test(migrator = "customer_portal::db::MIGRATOR")]
async fn back_from_checkout_the_page_links_the_session_and_the_button_opens_the_portal(db: PgPool) {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let site = Site::start().await;
    let origin = site.page_origin();
    let app = TestApp::spawn_with(
        db,
        &[("CORS_ALLOWED_ORIGINS", &origin), ("RETURN_URL_ALLOWED_ORIGINS", &origin)],
    )
    .await;
    // No customer linked yet: the webhook has not arrived.
    let project = insert_project(&app.db, Some(TEST_KEY), None).await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/checkout/sessions/cs_test_browser1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cs_test_browser1", "object": "checkout.session", "created": now() - 30,
            "client_reference_id": "user_1", "customer": "cus_FromCheckout1", "status": "complete",
        })))
        .expect(1)
        .mount(&app.stripe)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path(SESSIONS_PATH))
        .respond_with(session_at(&site.portal_url()))
        .mount(&app.stripe)
        .await;
    let browser = Browser::open().await;

    let page = format!("{}&session_id=cs_test_browser1", site.page_url(&app, &token(project, "user_1")));
    browser.load(&page).await;
    browser.click_manage_billing().await;

    let portal = url::Url::parse(&site.portal_url()).expect("portal URL");
    browser.client.wait().at_most(WAIT).for_url(&portal).await.expect("the browser reaches the portal page");
    let requests = app.stripe_requests().await;
    let session = requests.iter().find(|r| r.method.as_str() == "POST").expect("a portal session");
    let sent = form(session);
    assert_eq!(sent["customer"], "cus_FromCheckout1");
    // The page took session_id out of its address before it became the return_url.
    assert_eq!(sent["return_url"], format!("{origin}/?api={}", encoded(&app.url(""))));
    browser.close().await;
}

/// The example page and a stand-in portal page, on loopback, reached under two names.
struct Site {
    port: u16,
}

impl Site {
    async fn start() -> Self {
        let router = Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route(
                "/manage-billing.js",
                get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
            )
            .route(SESSION_PATH, get(|| async { Html(PORTAL_PAGE) }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { port }
    }

    /// `localhost`, so the page's origin differs from the service's `127.0.0.1`.
    fn page_origin(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    fn page_url(&self, app: &TestApp, token: &str) -> String {
        format!("{}/?api={}&token={token}", self.page_origin(), encoded(&app.url("")))
    }

    fn portal_url(&self) -> String {
        format!("http://127.0.0.1:{}{SESSION_PATH}", self.port)
    }
}

/// A value as `URLSearchParams` writes it into a query string.
fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn session_at(portal_url: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "bps_browser",
        "object": "billing_portal.session",
        "customer": "cus_test_123",
        "livemode": false,
        "url": portal_url,
    }))
}

/// A headless Chromium session on a chromedriver of its own.
struct Browser {
    client: Client,
    _driver: Chromedriver,
}

impl Browser {
    async fn open() -> Self {
        let driver = Chromedriver::start().await;
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        if let Ok(binary) = std::env::var("CHROME_BIN") {
            options["binary"] = json!(binary);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let client = tokio::time::timeout(WAIT, builder.capabilities(capabilities).connect(&driver.url))
            .await
            .expect("Chromium starts in time")
            .unwrap_or_else(|e| panic!("no Chromium session ({e}); {MISSING}"));
        client.set_window_size(800, 480).await.expect("window size");
        Self { client, _driver: driver }
    }

    /// Opens `url` and waits for the script to enable the button, which the page keeps
    /// disabled until a click would do something.
    async fn load(&self, url: &str) {
        self.client.goto(url).await.expect("page loads");
        self.wait_for_css("#manage-billing:enabled").await;
    }

    async fn click_manage_billing(&self) {
        self.client.find(Locator::Id("manage-billing")).await.expect("button").click().await.expect("click");
    }

    async fn wait_for_css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector} within {WAIT:?}: {e}"))
    }

    /// Clicks the button on `url` and returns the error the page then shows the user,
    /// after checking the button is usable again for a retry.
    async fn error_shown_for(&self, url: &str) -> String {
        self.load(url).await;
        self.click_manage_billing().await;
        let alert = self.wait_for_css("#billing-error[role=alert]:not([hidden])").await;
        let button = self.wait_for_css("#manage-billing:enabled:not([aria-busy])").await;
        assert_eq!(button.text().await.expect("button text"), "Manage billing");
        alert.text().await.expect("alert text")
    }

    /// What the page's console said, as chromedriver collected it.
    async fn console(&self) -> String {
        let entries = self.client.issue_cmd(BrowserLog).await.expect("browser log");
        let messages = entries.as_array().into_iter().flatten().filter_map(|e| e["message"].as_str());
        messages.collect::<Vec<_>>().join("\n")
    }

    async fn close(self) {
        self.client.close().await.expect("session closes");
    }
}

/// chromedriver's `POST /session/{id}/se/log`, which W3C WebDriver does not have.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}

/// A chromedriver on a free port, in a process group of its own so that dropping it also
/// ends the Chromium it started, even when a test panics before closing its session.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start() -> Self {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = closed_port().await;
        let child = std::process::Command::new(&program)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}); {MISSING}"));
        let driver = Self { child, url: format!("http://127.0.0.1:{port}") };
        let status = format!("{}/status", driver.url);
        let ready = eventually(WAIT, || async {
            let answer = reqwest::get(&status).await.ok();
            matches!(answer, Some(r) if r.status().is_success())
        })
        .await;
        assert!(ready, "chromedriver did not answer on {status} within {WAIT:?}");
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
