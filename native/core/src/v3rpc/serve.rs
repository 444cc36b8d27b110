//! [`Edge`]: binds the client listeners, serves gRPC and HTTP on each (the v3 gRPC services, `/version`,
//! `/health`, `/metrics`, the JSON gateway and the v2 API), and shuts down on request.
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::front::ClientPort;
use super::h2authority::AuthorityShim;
use super::watch::sync_loop;
use crate::etcdserver::EtcdServer;
use crate::transport::{self, ServerTls};

/// Client connections open at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 16384;
/// How long an HTTP/1 client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Edge {
    rt: Option<Runtime>,
    shutdown: watch::Sender<bool>,
    addrs: Vec<String>,
}

/// Binds every `host:port` now, non-blocking for tokio; returns the listeners and their bound addresses
/// (a port 0 becomes the real one). The client edge and the peer transport both start this way.
pub(crate) fn bind_all(listen: &[String]) -> Result<(Vec<TcpListener>, Vec<String>), String> {
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for a in listen {
        let l = TcpListener::bind(a.as_str()).map_err(|e| format!("listen tcp {a}: bind: {e}"))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        addrs.push(l.local_addr().map_err(|e| e.to_string())?.to_string());
        listeners.push(l);
    }
    Ok((listeners, addrs))
}

/// Accepts client connections on `l` and serves `port` on each (gRPC over HTTP/2 and HTTP/1.1 on one port),
/// over TLS when `tls` is set, until `stop` turns true; then the open connections finish their requests (GOAWAY
/// for HTTP/2). HTTP/1 headers go out title-cased (`X-Etcd-Index`), as Go's server writes them.
async fn serve_listener(
    l: TcpListener,
    port: ClientPort,
    tls: Option<Arc<ServerTls>>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(l) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pyetcd_fast: listener: {e}");
            return;
        }
    };
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().title_case_headers(true);
    // grpc-go sends no Date header on HTTP/2; formatting one per response is pure overhead on the hot path.
    builder.http2().auto_date_header(false);
    // Requests a client gave up on (deadline passed) while this member could not run — paused, or busy with a
    // burst — arrive as a HEADERS and RST_STREAM pair not yet accepted. h2's default allows 20 of those per
    // connection before a GOAWAY (ENHANCE_YOUR_CALM, "too_many_resets"), which dropped every watch of a client
    // after a pause of a few seconds; grpc-go has no such limit. 1024 keeps the rapid-reset bound (as the
    // locally reset streams' default) while a resumed member keeps its clients.
    builder.http2().max_pending_accept_reset_streams(1024);
    // --max-concurrent-streams (etcd's default, MaxUint32, is no limit).
    builder.http2().max_concurrent_streams(port.max_concurrent_streams());
    // A client that opens a connection and dribbles an HTTP/1 request line must not hold it forever.
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    let acceptor = tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = async { stop.wait_for(|v| *v).await.is_ok() } => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: closed at once
        };
        // Responses are small and latency-bound: no Nagle delay behind a delayed ACK.
        let _ = tcp.set_nodelay(true);
        let (builder, port, watcher) = (builder.clone(), port.clone(), graceful.watcher());
        match (&tls, &acceptor) {
            (Some(tls), Some(acceptor)) => {
                let (tls, acceptor) = (tls.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let Some(a) = transport::accept(&tls, &acceptor, tcp).await else {
                        return;
                    };
                    let port = port.with_common_name(a.common_name);
                    let io = TokioIo::new(AuthorityShim::new(a.stream));
                    let _ = watcher.watch(builder.serve_connection_with_upgrades(io, port).into_owned()).await;
                });
            }
            _ => {
                let io = TokioIo::new(AuthorityShim::new(tcp));
                let conn = watcher.watch(builder.serve_connection_with_upgrades(io, port).into_owned());
                tokio::spawn(async move {
                    let _slot = slot;
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

impl Edge {
    /// Binds every `host:port` now (so a busy port fails the start), then serves them on a new runtime.
    /// Each listener is `(host:port, TLS)`; `tls` is the client port's TLS, needed when any listener has it.
    pub fn start(
        server: Arc<EtcdServer>,
        listen: &[(String, bool)],
        tls: Option<Arc<ServerTls>>,
        worker_threads: usize,
    ) -> Result<Edge, String> {
        let hosts: Vec<String> = listen.iter().map(|(a, _)| a.clone()).collect();
        let (listeners, addrs) = bind_all(&hosts)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .thread_name("pyetcd-edge")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (tx, rx) = watch::channel(false);
        for (l, (addr, secure)) in listeners.into_iter().zip(listen) {
            let tls = match (secure, &tls) {
                (false, _) => None,
                (true, Some(t)) => Some(t.clone()),
                (true, None) => {
                    return Err(format!("cannot listen on TLS for {addr}: KeyFile and CertFile are not presented"))
                }
            };
            let port = ClientPort::new(&server);
            rt.spawn(serve_listener(l, port, tls, rx.clone()));
        }
        let progress = Duration::from_millis(server.cfg.watch_progress_notify_ms.max(1));
        rt.spawn(sync_loop(server.clone(), progress, rx.clone()));
        Ok(Edge { rt: Some(rt), shutdown: tx, addrs })
    }

    /// The bound addresses (a port 0 becomes the real one).
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Stops accepting, lets in-flight requests finish for a moment, then drops the runtime.
    pub fn shutdown(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.shutdown();
    }
}
