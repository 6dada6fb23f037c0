//! Logs: the subscriber, and one line per request (method, route, status, latency,
//! request ID). Nothing here records headers, bodies or query strings, so tokens, keys
//! and portal URLs cannot reach a log line through it.

use std::{io::IsTerminal, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::MatchedPath,
    http::{HeaderName, Request, Response, header::AUTHORIZATION},
};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};
use tracing_subscriber::{EnvFilter, fmt::writer::BoxMakeWriter};

mod batched;

pub use batched::FlushGuard;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as text or, with
/// `LOG_FORMAT=json`, one JSON object per line for log shippers. Read before the rest
/// of the configuration so that configuration errors are logged in the chosen format.
///
/// With `batched` (the service), lines are written out in batches (see `batched`);
/// keep the guard until the process ends, so none is lost. The other commands write
/// each line at once, in order with what they print.
pub fn init(batched: bool) -> Result<Option<FlushGuard>, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("LOG_FORMAT").unwrap_or_default();
    // Colours for a person at a terminal only: in a file or a log shipper they are noise.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = match batched {
        true => {
            let (writer, guard) =
                batched::BatchedStderr::start().map_err(|e| format!("cannot start the log writer: {e}"))?;
            (BoxMakeWriter::new(writer), Some(guard))
        }
        false => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(writer);
    let installed = match format.trim().to_ascii_lowercase().as_str() {
        "" | "text" => logs.try_init(),
        // The request span (method, route, request_id, status) rides along on every line.
        "json" => logs.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        _ => return Err(format!("LOG_FORMAT: expected `text` or `json`, got `{format}`")),
    };
    // Already installed (a second call in one process) is fine: logs still flow.
    let _ = installed;
    Ok(guard)
}

/// Request IDs (taken from `x-request-id` or made up, and sent back) and the request log.
pub fn instrument<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(make_span)
                    .on_request(())
                    .on_response(on_response)
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
    )
}

fn make_span(request: &Request<Body>) -> Span {
    // The route template, not the URI: paths and queries are the caller's to fill.
    let route = request.extensions().get::<MatchedPath>().map_or("(unmatched)", MatchedPath::as_str);
    let request_id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok());
    // The handler records what it did here, so a request is one log line, not two.
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        status = Empty,
        livemode = Empty,
        flow = Empty,
        stripe_session = Empty,
        stripe_event = Empty,
        event_type = Empty,
        outcome = Empty
    )
}

fn on_response(response: &Response<Body>, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    tracing::info!(latency_ms = latency.as_secs_f64() * 1000.0, "request finished");
}
