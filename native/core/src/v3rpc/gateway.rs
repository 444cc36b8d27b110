//! The grpc-gateway JSON endpoints etcd 3.4 serves on the client port (`/v3/...` and its alias `/v3beta/...`):
//! each POST body is the request message in the protobuf JSON mapping (proto field names, int64 as strings,
//! bytes as base64, enums by name), handed to the same service implementation the gRPC edge uses; the
//! answer is the response message in the same mapping. Errors are grpc-gateway v1's
//! `{"error":..,"message":..,"code":<gRPC code>}` with its HTTP status for the code.
//!
//! Streams (`watch`, `lease/keepalive`, `maintenance/snapshot`, `election/observe`) read a sequence of JSON
//! request objects from the body and answer with newline-delimited `{"result":{...}}` objects, flushed one
//! by one; an error in the stream is `{"error":{...}}`.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Status};

use super::auth::AuthService;
use super::http::json_response;
use super::{cluster::ClusterService, kv::KvService, lease::LeaseService, maintenance::MaintenanceService};
use super::{v3election::ElectionService, v3lock::LockService, watch::WatchService};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{LeaseKeepAliveRequest, WatchRequest};
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3lockpb::lock_server::Lock;

/// grpc-gateway v1's HTTPStatusFromCode.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_object(s: &Status) -> serde_json::Value {
    serde_json::json!({"error": s.message(), "message": s.message(), "code": s.code() as i32})
}

fn error_response(s: &Status) -> Response<Body> {
    json_response(http_status(s.code()), error_object(s).to_string())
}

fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A gateway request as the gRPC services take it: the `Authorization` header becomes the `token` metadata
/// (grpc-gateway passes it as `authorization`; etcd reads either).
fn grpc_request<Req>(req: Req, headers: &HeaderMap) -> tonic::Request<Req> {
    let mut r = tonic::Request::new(req);
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Ok(v) = v.parse() {
            r.metadata_mut().insert("token", v);
        }
    }
    r
}

/// One unary call: decode, call, encode.
async fn unary<Req, Resp, Fut>(
    body: Bytes,
    headers: &HeaderMap,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response<Body>
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let req = match decode::<Req>(&body) {
        Ok(r) => r,
        Err(s) => return error_response(&s),
    };
    match call(grpc_request(req, headers)).await {
        Ok(r) => json_response(StatusCode::OK, serde_json::to_string(&r.into_inner()).expect("json")),
        Err(s) => error_response(&s),
    }
}

/// A response stream as newline-delimited `{"result":...}` objects; an error ends it as `{"error":...}`.
fn stream_response<T, S>(stream: S) -> Response<Body>
where
    T: Serialize,
    S: Stream<Item = Result<T, Status>> + Send + 'static,
{
    let lines = stream.map(|item| {
        let line = match item {
            Ok(msg) => serde_json::json!({ "result": msg }),
            Err(s) => serde_json::json!({ "error": error_object(&s) }),
        };
        Ok::<Bytes, std::convert::Infallible>(Bytes::from(line.to_string() + "\n"))
    });
    json_response(StatusCode::OK, Body::from_stream(lines))
}

/// One server-streaming call: decode, call, stream the answers.
async fn server_stream<Req, T, S, Fut>(
    body: Bytes,
    headers: &HeaderMap,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response<Body>
where
    Req: DeserializeOwned + Default,
    T: Serialize,
    S: Stream<Item = Result<T, Status>> + Send + 'static,
    Fut: std::future::Future<Output = Result<tonic::Response<S>, Status>>,
{
    let req = match decode::<Req>(&body) {
        Ok(r) => r,
        Err(s) => return error_response(&s),
    };
    match call(grpc_request(req, headers)).await {
        Ok(r) => stream_response(r.into_inner()),
        Err(s) => error_response(&s),
    }
}

/// The request objects of a client stream: JSON values one after another in the body, each passed on as
/// soon as it is complete.
/// One request object of a streaming body may be at most this large (etcd's request limit with room): an
/// unterminated object is refused rather than buffered.
const MAX_STREAM_OBJECT: usize = 4 << 20;

fn request_stream<T: DeserializeOwned + Send + 'static>(body: Body) -> impl Stream<Item = Result<T, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<T, Status>>(16);
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let Ok(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            let mut de = serde_json::Deserializer::from_slice(&buf).into_iter::<T>();
            let mut used = 0;
            loop {
                match de.next() {
                    Some(Ok(v)) => {
                        used = de.byte_offset();
                        if tx.send(Ok(v)).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => {
                        let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
                        return;
                    }
                    None => break,
                }
            }
            buf.drain(..used);
            if buf.len() > MAX_STREAM_OBJECT {
                let _ = tx.send(Err(Status::invalid_argument("request object too large"))).await;
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

type S = State<Arc<EtcdServer>>;

macro_rules! unary_route {
    ($router:expr, $path:expr, $svc:ident, $method:ident) => {
        $router.route(
            $path,
            post(|State(server): S, headers: HeaderMap, body: Bytes| async move {
                let svc = $svc { server };
                unary(body, &headers, |r| async move { svc.$method(r).await }).await
            }),
        )
    };
}

macro_rules! stream_route {
    ($router:expr, $path:expr, $svc:ident, $method:ident) => {
        $router.route(
            $path,
            post(|State(server): S, headers: HeaderMap, body: Bytes| async move {
                let svc = $svc { server };
                server_stream(body, &headers, |r| async move { svc.$method(r).await }).await
            }),
        )
    };
}

/// The routes under one prefix (`/v3` or `/v3beta`).
fn routes(p: &str) -> Router<Arc<EtcdServer>> {
    let mut r = Router::new();
    r = unary_route!(r, &format!("{p}/kv/range"), KvService, range);
    r = unary_route!(r, &format!("{p}/kv/put"), KvService, put);
    r = unary_route!(r, &format!("{p}/kv/deleterange"), KvService, delete_range);
    r = unary_route!(r, &format!("{p}/kv/txn"), KvService, txn);
    r = unary_route!(r, &format!("{p}/kv/compaction"), KvService, compact);
    r = unary_route!(r, &format!("{p}/lease/grant"), LeaseService, lease_grant);
    for lp in [format!("{p}/lease"), format!("{p}/kv/lease")] {
        r = unary_route!(r, &format!("{lp}/revoke"), LeaseService, lease_revoke);
        r = unary_route!(r, &format!("{lp}/timetolive"), LeaseService, lease_time_to_live);
        r = unary_route!(r, &format!("{lp}/leases"), LeaseService, lease_leases);
    }
    r = unary_route!(r, &format!("{p}/cluster/member/add"), ClusterService, member_add);
    r = unary_route!(r, &format!("{p}/cluster/member/remove"), ClusterService, member_remove);
    r = unary_route!(r, &format!("{p}/cluster/member/update"), ClusterService, member_update);
    r = unary_route!(r, &format!("{p}/cluster/member/list"), ClusterService, member_list);
    r = unary_route!(r, &format!("{p}/cluster/member/promote"), ClusterService, member_promote);
    r = unary_route!(r, &format!("{p}/maintenance/alarm"), MaintenanceService, alarm);
    r = unary_route!(r, &format!("{p}/maintenance/status"), MaintenanceService, status);
    r = unary_route!(r, &format!("{p}/maintenance/defragment"), MaintenanceService, defragment);
    r = unary_route!(r, &format!("{p}/maintenance/transfer-leadership"), MaintenanceService, move_leader);
    r = unary_route!(r, &format!("{p}/lock/lock"), LockService, lock);
    r = unary_route!(r, &format!("{p}/lock/unlock"), LockService, unlock);
    r = unary_route!(r, &format!("{p}/election/campaign"), ElectionService, campaign);
    r = unary_route!(r, &format!("{p}/election/proclaim"), ElectionService, proclaim);
    r = unary_route!(r, &format!("{p}/election/leader"), ElectionService, leader);
    r = unary_route!(r, &format!("{p}/election/resign"), ElectionService, resign);
    // etcd 3.4 registers Hash and HashKV on the same path; Hash answers there (HashKV has no path of its own
    // until 3.5.10).
    r = unary_route!(r, &format!("{p}/maintenance/hash"), MaintenanceService, hash);
    r = stream_route!(r, &format!("{p}/maintenance/snapshot"), MaintenanceService, snapshot);
    r = stream_route!(r, &format!("{p}/election/observe"), ElectionService, observe);
    r = r.route(
        &format!("{p}/watch"),
        post(|State(server): S, headers: HeaderMap, body: Body| async move {
            let creds = super::header::Credentials::of(&grpc_request((), &headers));
            let requests = request_stream::<WatchRequest>(body);
            let responses = (WatchService { server }).watch_requests(creds, requests);
            stream_response(responses.map(|r| r.map(|q| q.to_response())))
        }),
    );
    r = r.route(
        &format!("{p}/lease/keepalive"),
        post(|State(server): S, headers: HeaderMap, body: Body| async move {
            let creds = super::header::Credentials::of(&grpc_request((), &headers));
            let requests = request_stream::<LeaseKeepAliveRequest>(body);
            stream_response((LeaseService { server }).keep_alive_requests(creds, requests))
        }),
    );
    let a = format!("{p}/auth");
    r = unary_route!(r, &format!("{a}/enable"), AuthService, auth_enable);
    r = unary_route!(r, &format!("{a}/disable"), AuthService, auth_disable);
    r = unary_route!(r, &format!("{a}/authenticate"), AuthService, authenticate);
    r = unary_route!(r, &format!("{a}/user/add"), AuthService, user_add);
    r = unary_route!(r, &format!("{a}/user/get"), AuthService, user_get);
    r = unary_route!(r, &format!("{a}/user/list"), AuthService, user_list);
    r = unary_route!(r, &format!("{a}/user/delete"), AuthService, user_delete);
    r = unary_route!(r, &format!("{a}/user/changepw"), AuthService, user_change_password);
    r = unary_route!(r, &format!("{a}/user/grant"), AuthService, user_grant_role);
    r = unary_route!(r, &format!("{a}/user/revoke"), AuthService, user_revoke_role);
    r = unary_route!(r, &format!("{a}/role/add"), AuthService, role_add);
    r = unary_route!(r, &format!("{a}/role/get"), AuthService, role_get);
    r = unary_route!(r, &format!("{a}/role/list"), AuthService, role_list);
    r = unary_route!(r, &format!("{a}/role/delete"), AuthService, role_delete);
    r = unary_route!(r, &format!("{a}/role/grant"), AuthService, role_grant_permission);
    unary_route!(r, &format!("{a}/role/revoke"), AuthService, role_revoke_permission)
}

/// `/v3/...` and `/v3beta/...`.
pub fn router(server: Arc<EtcdServer>) -> Router {
    routes("/v3").merge(routes("/v3beta")).with_state(server)
}
