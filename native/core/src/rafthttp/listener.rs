//! The peer listener: raft message streams in, and the peer port's HTTP endpoints.
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::sync::watch;

use super::{ACCEPT, MAGIC, REJECT_CLUSTER, REJECT_REMOVED, REJECT_TO};
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::{LeaseKeepAliveRequest, LeaseTimeToLiveRequest};
use crate::raftnode::logger::zap_log;
use crate::transport::{self, ServerTls};
use crate::v3rpc::http::ETCD_SERVER_VERSION;

/// A frame larger than this is refused (a snapshot of the largest allowed backend, 8 GiB, is the bound).
const MAX_FRAME: usize = u32::MAX as usize;
/// A frame's body is read in pieces of at most this many bytes, so a length larger than what follows costs
/// no more memory than what arrived.
const READ_PIECE: usize = 1 << 20;
/// How long a new connection may take to say which protocol it speaks.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once on the peer port; more are closed as they arrive (a member needs two per peer
/// and a few for forwarded requests).
const MAX_CONNECTIONS: usize = 256;

type Srv = Weak<EtcdServer>;

pub(super) async fn serve(
    l: std::net::TcpListener,
    server: Srv,
    tls: Option<Arc<ServerTls>>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
        return;
    };
    let app = router(server.clone());
    let acceptor = tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => {
                    // Out of descriptors, most likely: wait instead of spinning on accept.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: dropped at once
        };
        let _ = stream.set_nodelay(true);
        let (server, app, stop, tls, acceptor) =
            (server.clone(), app.clone(), stop.clone(), tls.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match (tls, acceptor) {
                (Some(tls), Some(acceptor)) => {
                    if let Some(a) = transport::accept(&tls, &acceptor, stream).await {
                        serve_conn(a.stream, server, app, stop).await;
                    }
                }
                _ => serve_conn(stream, server, app, stop).await,
            }
        });
    }
}

/// A connection's first four bytes choose its protocol: a raft stream, or HTTP/1.1 for everything else.
async fn serve_conn<S>(mut stream: S, server: Srv, app: Router, stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut magic = [0u8; 4];
    if !matches!(tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.read_exact(&mut magic)).await, Ok(Ok(_))) {
        return;
    }
    if &magic == MAGIC {
        raft_stream(stream, server, stop).await;
    } else {
        let svc = TowerToHyperService::new(app);
        let io = Prefixed { prefix: magic, at: 0, inner: stream };
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), svc)
            .await;
    }
}

/// `inner` with bytes already read from it put back in front.
struct Prefixed<S> {
    prefix: [u8; 4],
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads `n` bytes into `body` piece by piece (memory follows the bytes that arrive, not the length claimed).
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, n: usize, body: &mut Vec<u8>) -> std::io::Result<()> {
    body.clear();
    while body.len() < n {
        let start = body.len();
        body.resize(start + (n - start).min(READ_PIECE), 0);
        r.read_exact(&mut body[start..]).await?;
    }
    Ok(())
}

/// A raft stream whose `RAFT` was read: the rest of the handshake, the answer, then frames until it closes.
async fn raft_stream<S: AsyncRead + AsyncWrite + Unpin>(stream: S, server: Srv, mut stop: watch::Receiver<bool>) {
    let mut r = BufReader::with_capacity(256 << 10, stream);
    let mut hs = [0u8; 24];
    if !matches!(tokio::time::timeout(FIRST_BYTES_TIMEOUT, r.read_exact(&mut hs)).await, Ok(Ok(_))) {
        return;
    }
    let field = |i: usize| u64::from_be_bytes(hs[8 * i..8 + 8 * i].try_into().unwrap());
    let (cluster_id, from, to) = (field(0), field(1), field(2));
    let Some(s) = server.upgrade() else {
        return;
    };
    let answer = if cluster_id != s.cluster_id() {
        zap_log(
            "warn",
            "rafthttp/http.go",
            "request cluster ID mismatch",
            &[
                ("local-member-cluster-id", format!("{:x}", s.cluster_id())),
                ("remote-peer-cluster-id", format!("{cluster_id:x}")),
                ("remote-peer-id", format!("{from:x}")),
            ],
        );
        REJECT_CLUSTER
    } else if s.cluster.is_removed(from) {
        zap_log(
            "warn",
            "rafthttp/http.go",
            "rejected stream from remote peer because it was removed",
            &[("remote-peer-id-stream-handler", format!("{from:x}"))],
        );
        REJECT_REMOVED
    } else if to != s.member_id() || !s.is_known_member(from) {
        // Only members send raft messages: a stranger's forged MsgSnapshot must not reach raft.
        REJECT_TO
    } else {
        ACCEPT
    };
    drop(s);
    if r.get_mut().write_all(&[answer]).await.is_err() || answer != ACCEPT {
        return;
    }
    let mut batch = Vec::new();
    let mut body = Vec::new();
    loop {
        let mut len = [0u8; 4];
        let read = tokio::select! {
            r = r.read_exact(&mut len) => r,
            _ = stop.changed() => return,
        };
        if read.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME || read_frame(&mut r, n, &mut body).await.is_err() {
            return;
        }
        match Message::parse_from_bytes(&body) {
            Ok(m) => batch.push(m),
            Err(_) => return,
        }
        // Hand over everything already buffered at once: one wake-up of the raft loop per read.
        if r.buffer().len() < 4 {
            let Some(s) = server.upgrade() else {
                return;
            };
            s.receive(std::mem::take(&mut batch));
        }
    }
}

fn cluster_header(s: &EtcdServer) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("X-Etcd-Cluster-ID", HeaderValue::from_str(&format!("{:x}", s.cluster_id())).unwrap());
    h
}

fn error_response(e: EtcdError) -> Response {
    let code = match e {
        EtcdError::LeaseNotFound | EtcdError::MemberNotFound | EtcdError::MemberRemoved => StatusCode::NOT_FOUND,
        EtcdError::NotLeader | EtcdError::NoLeader => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::PRECONDITION_FAILED,
    };
    (code, e.message()).into_response()
}

fn router(server: Srv) -> Router {
    // Requests that act (forwarded by a follower) must come from this cluster: etcd's cluster id header.
    let internal = Router::new()
        .route("/leases", post(lease_renew))
        .route("/leases/internal", post(lease_ttl))
        .route("/members/promote/{id}", post(promote))
        .route_layer(axum::middleware::from_fn_with_state(server.clone(), same_cluster));
    Router::new().route("/members", get(members)).route("/version", get(version)).merge(internal).with_state(server)
}

/// Refuses a request whose `X-Etcd-Cluster-ID` is not this cluster's (412, as etcd's peer handlers answer)
/// or whose `X-Server-From` is not a member (403).
async fn same_cluster(
    State(server): State<Srv>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(s) = server.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let theirs = req.headers().get("X-Etcd-Cluster-ID").and_then(|v| v.to_str().ok());
    if theirs.and_then(|v| u64::from_str_radix(v, 16).ok()) != Some(s.cluster_id()) {
        return (StatusCode::PRECONDITION_FAILED, "cluster ID mismatch").into_response();
    }
    let from = req.headers().get("X-Server-From").and_then(|v| v.to_str().ok());
    if !from.and_then(|v| u64::from_str_radix(v, 16).ok()).is_some_and(|id| s.is_known_member(id)) {
        return (StatusCode::FORBIDDEN, "not a member of this cluster").into_response();
    }
    drop(s);
    next.run(req).await
}

async fn members(State(server): State<Srv>) -> Response {
    let Some(s) = server.upgrade() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let list: Vec<serde_json::Value> = s.cluster.members().iter().map(|m| m.to_json()).collect();
    let mut h = cluster_header(&s);
    h.insert("Content-Type", HeaderValue::from_static("application/json"));
    (h, serde_json::to_string(&list).unwrap()).into_response()
}

async fn version() -> Response {
    let body = format!("{{\"etcdserver\":\"{ETCD_SERVER_VERSION}\",\"etcdcluster\":\"3.4.0\"}}");
    ([("Content-Type", "application/json")], body).into_response()
}

async fn lease_renew(State(server): State<Srv>, body: Bytes) -> Response {
    let (Some(s), Ok(req)) = (server.upgrade(), LeaseKeepAliveRequest::decode(body)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match s.lease_renew_local(req.id).await {
        Ok(ttl) => (cluster_header(&s), ttl.to_be_bytes().to_vec()).into_response(),
        Err(e) => error_response(e),
    }
}

async fn lease_ttl(State(server): State<Srv>, body: Bytes) -> Response {
    let (Some(s), Ok(req)) = (server.upgrade(), LeaseTimeToLiveRequest::decode(body)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match s.lease_time_to_live_local(&req).await {
        Ok(resp) => (cluster_header(&s), resp.encode_to_vec()).into_response(),
        Err(e) => error_response(e),
    }
}

async fn promote(State(server): State<Srv>, Path(id): Path<String>) -> Response {
    let (Some(s), Ok(id)) = (server.upgrade(), u64::from_str_radix(&id, 16)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match s.promote_member(id).await {
        Ok(_) => (cluster_header(&s), "").into_response(),
        Err(e) => error_response(e),
    }
}
