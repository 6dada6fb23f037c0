//! Connections: accepting them, the HTTP/1 settings they are served with, and graceful
//! shutdown. hyper's own builder rather than `axum::serve`, because two settings that
//! matter here are not reachable through it (see `http1`).

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, body::Body, extract::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpSocket};
use tower::ServiceExt;

/// Connections the kernel may hold for us before we accept them. The usual 1,024 is
/// too few for a crowd that arrives at once: the kernel drops the rest of their SYNs
/// and those clients wait a whole second to retry (bench/RESULTS.md). The kernel caps
/// it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 8192;

/// Listens on `addr` with a backlog sized for bursts of new clients.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    listen_with(addr, false)
}

fn listen_with(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted service can take its port back at once.
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A listener per serving thread on one address, bound before any thread starts, so a
/// taken port fails start-up (see `serve_on_threads`).
pub struct ThreadListeners(Vec<std::net::TcpListener>);

/// Binds `threads` listeners on `addr`, sharing it (`SO_REUSEPORT`: the kernel spreads
/// new connections over them). One thread needs no shared port, and then a second copy
/// of the service on it fails as it should.
pub fn listen_on_threads(addr: SocketAddr, threads: usize) -> std::io::Result<ThreadListeners> {
    let threads = threads.max(1);
    let listeners = (0..threads)
        .map(|_| listen_with(addr, threads > 1).and_then(|l| l.into_std()))
        .collect::<Result<_, _>>()?;
    Ok(ThreadListeners(listeners))
}

/// Serves `app` on a thread per listener, each with a single-threaded runtime, until
/// `shutdown` resolves; then each finishes as `serve` does.
///
/// Why not one runtime with a worker per core: its workers steal each other's tasks
/// and wake each other, and a request's lookup and Stripe call were answered on
/// whichever thread owned that connection. Here a connection, its requests and their
/// calls stay on one thread, as with nginx's workers (bench/RESULTS.md).
pub async fn serve_on_threads(
    ThreadListeners(listeners): ThreadListeners,
    app: Router,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut finished = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let (app, mut stopped) = (app.clone(), stopped.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name(format!("worker-{i}")).spawn(move || {
            let served = runtime.block_on(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                serve(TcpListener::from_std(listener)?, app, stop, options).await
            });
            let _ = done.send(served);
        })?;
        finished.push(result);
    }
    // The caller's runtime waits for the signal, and runs the background tasks.
    shutdown.await;
    let _ = stop.send(true);
    for result in finished {
        result.await.map_err(|_| std::io::Error::other("a worker thread panicked"))??;
    }
    Ok(())
}

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// After `shutdown`, in-flight requests get this long to finish.
    pub grace: Duration,
    /// A connection that takes longer to deliver a request's headers, counted from when
    /// hyper starts waiting for them (idle keep-alive time included), is closed, so
    /// slow or idle clients cannot pile up connections (slowloris).
    pub header_timeout: Duration,
}

/// Serves `app` until `shutdown` resolves, then lets in-flight requests finish for at
/// most `options.grace` before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let ServeOptions { grace, header_timeout } = options;
    let http = http1(header_timeout);
    let graceful = GracefulShutdown::new();
    // Every connection shares this one router: `Router::with_state` per connection, as
    // `axum::serve(listener, router)` does, deep-copies every route (14 KiB each).
    let service = app.map_request(|request: Request<Incoming>| request.map(Body::new));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One write per response; Nagle's algorithm would only hold it back.
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(?grace, "shutting down: no new connections, finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; dropping the requests still in flight");
        }
    }
    Ok(())
}

fn http1(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    // While a request is in flight, hyper would otherwise keep reading the connection
    // to notice a client that hangs up. The request's headers still point into the
    // connection's 8 KiB read buffer then, so that read allocates a second one: 16 KiB
    // per waiting request instead of 8 (bench/RESULTS.md). Without it, a client that
    // leaves mid-request is noticed when its answer is written; the Stripe call, bounded
    // by STRIPE_TIMEOUT_MS and MAX_IN_FLIGHT, runs to its end either way.
    http.half_close(true);
    http
}

/// Failing to accept is mostly running out of file descriptors: waiting a moment for
/// some connections to close beats spinning on the error.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
