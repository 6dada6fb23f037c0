//! A stand-in for Stripe's `POST /v1/billing_portal/sessions`, fast enough that the
//! benchmark measures the service and not the fake: it answers tens of thousands of
//! requests a second and holds thousands of slow ones on one thread.
//!
//! Usage: fake-stripe [--port 12111] [--latency-ms 0] [--threads 1]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

struct Args {
    port: u16,
    latency: Duration,
    threads: usize,
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("fake-stripe: {message}\nusage: fake-stripe [--port N] [--latency-ms N] [--threads N]");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    if let Err(e) = runtime.block_on(serve(args)) {
        eprintln!("fake-stripe: {e}");
        std::process::exit(1);
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args { port: 12111, latency: Duration::ZERO, threads: 1 };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--port" => parsed.port = u16::try_from(number(&value)?).map_err(|_| "--port: too large")?,
            "--latency-ms" => parsed.latency = Duration::from_millis(number(&value)?),
            "--threads" => parsed.threads = usize::try_from(number(&value)?.max(1)).unwrap_or(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(parsed)
}

async fn serve(args: Args) -> std::io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    // Stripe does not drop SYNs when 2,000 connections open at once; the default
    // backlog of 1,024 would, and the retried ones would wait a second.
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(8192)?;
    eprintln!("fake-stripe listening on http://{addr} with {:?} latency", args.latency);
    let latency = args.latency;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a reset before accept: keep serving the rest.
            Err(e) => {
                eprintln!("fake-stripe: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, latency));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(request: Request<Incoming>, latency: Duration) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST || request.uri().path() != "/v1/billing_portal/sessions" {
        return Ok(error(StatusCode::NOT_FOUND, "resource_missing", None, "Unrecognized request URL"));
    }
    let has_key = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| {
            ["sk_test_", "sk_live_", "rk_test_", "rk_live_"].iter().any(|p| key.starts_with(p))
        });
    if !has_key {
        return Ok(error(StatusCode::UNAUTHORIZED, "api_key_invalid", None, "Invalid API Key provided"));
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "parameter_invalid", None, "Unreadable body")),
    };
    let customer = form_value(&body, "customer").unwrap_or_default();
    if !customer.starts_with("cus_") {
        return Ok(error(StatusCode::BAD_REQUEST, "resource_missing", Some("customer"), "No such customer"));
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let session = format!(
        r#"{{"id":"bps_bench{n:016x}","object":"billing_portal.session","customer":"{customer}","livemode":false,"url":"https://billing.stripe.com/p/session/test_bench{n:016x}"}}"#
    );
    Ok(json(StatusCode::OK, session))
}

/// The raw value of one field of a form body; customer IDs need no decoding.
fn form_value<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

fn error(status: StatusCode, code: &str, param: Option<&str>, message: &str) -> Response<Full<Bytes>> {
    let param = param.map(|p| format!(r#","param":"{p}""#)).unwrap_or_default();
    json(
        status,
        format!(
            r#"{{"error":{{"type":"invalid_request_error","code":"{code}"{param},"message":"{message}"}}}}"#
        ),
    )
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", "req_bench")
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}
