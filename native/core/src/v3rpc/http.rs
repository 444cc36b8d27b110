//! The client port's HTTP/1.1 endpoints: `/version` and `/health`, in etcd's JSON shapes, and `/metrics`.
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::etcdserver::EtcdServer;

/// The etcd release whose API we serve, and the cluster version etcd 3.4 reports.
pub const ETCD_SERVER_VERSION: &str = "3.4.23";
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

pub fn router(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/metrics", get(super::metrics::metrics))
        .with_state(server)
}

/// An unknown path: gRPC's UNIMPLEMENTED to a gRPC client, Go's "404 page not found" to anything else.
pub async fn not_found(headers: axum::http::HeaderMap) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/grpc"), (GRPC_STATUS, "12")]).into_response();
    }
    go_error(StatusCode::NOT_FOUND, "404 page not found")
}

const GRPC_STATUS: header::HeaderName = header::HeaderName::from_static("grpc-status");

/// Go's `http.Error`: the message and a newline as plain text, with `X-Content-Type-Options: nosniff`.
pub(crate) fn go_error(status: StatusCode, msg: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("X-Content-Type-Options", "nosniff")
        .body(Body::from(format!("{msg}\n")))
        .expect("response")
}

/// Go's answer to a method a handler does not take: 405 with the `Allow` list.
pub(crate) fn method_not_allowed(allow: &str) -> Response {
    let mut resp = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    resp.headers_mut().insert(header::ALLOW, allow.parse().expect("header value"));
    resp
}

/// `body` as `application/json` with `status`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("response")
}

async fn version() -> impl IntoResponse {
    // etcd's two fields, so clients that parse them keep working; ours is an extra field they ignore.
    let body = format!(
        "{{\"etcdserver\":\"{ETCD_SERVER_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\",\"pyetcd_fast\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn health(State(server): State<Arc<EtcdServer>>) -> impl IntoResponse {
    // etcd 3.4: unhealthy (503) without a leader; the value is a string.
    let (code, body) = if server.leader() != 0 {
        (StatusCode::OK, "{\"health\":\"true\"}")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "{\"health\":\"false\"}")
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}
