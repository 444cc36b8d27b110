//! `grpc_server_handled_total` (go-grpc-prometheus, as etcd exports it): RPCs completed, by service, method,
//! type and gRPC code. The counters are fixed per method (every code of every served method starts at 0, as
//! etcd pre-registers them); the client port finds the method from the path and [`counted`] the code
//! from the response's `grpc-status` (in the headers of an error answered at once, otherwise in the
//! trailers). A stream the client abandons before the trailers counts as Canceled.
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// gRPC's code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;

/// (service, method, type) of every RPC the client port serves.
pub const METHODS: [(&str, &str, &str); 46] = [
    ("etcdserverpb.KV", "Range", "unary"),
    ("etcdserverpb.KV", "Put", "unary"),
    ("etcdserverpb.KV", "DeleteRange", "unary"),
    ("etcdserverpb.KV", "Txn", "unary"),
    ("etcdserverpb.KV", "Compact", "unary"),
    ("etcdserverpb.Watch", "Watch", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseGrant", "unary"),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary"),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseTimeToLive", "unary"),
    ("etcdserverpb.Lease", "LeaseLeases", "unary"),
    ("etcdserverpb.Cluster", "MemberAdd", "unary"),
    ("etcdserverpb.Cluster", "MemberRemove", "unary"),
    ("etcdserverpb.Cluster", "MemberUpdate", "unary"),
    ("etcdserverpb.Cluster", "MemberList", "unary"),
    ("etcdserverpb.Cluster", "MemberPromote", "unary"),
    ("etcdserverpb.Maintenance", "Alarm", "unary"),
    ("etcdserverpb.Maintenance", "Status", "unary"),
    ("etcdserverpb.Maintenance", "Defragment", "unary"),
    ("etcdserverpb.Maintenance", "Hash", "unary"),
    ("etcdserverpb.Maintenance", "HashKV", "unary"),
    ("etcdserverpb.Maintenance", "Snapshot", "server_stream"),
    ("etcdserverpb.Maintenance", "MoveLeader", "unary"),
    ("etcdserverpb.Auth", "AuthEnable", "unary"),
    ("etcdserverpb.Auth", "AuthDisable", "unary"),
    ("etcdserverpb.Auth", "Authenticate", "unary"),
    ("etcdserverpb.Auth", "UserAdd", "unary"),
    ("etcdserverpb.Auth", "UserGet", "unary"),
    ("etcdserverpb.Auth", "UserList", "unary"),
    ("etcdserverpb.Auth", "UserDelete", "unary"),
    ("etcdserverpb.Auth", "UserChangePassword", "unary"),
    ("etcdserverpb.Auth", "UserGrantRole", "unary"),
    ("etcdserverpb.Auth", "UserRevokeRole", "unary"),
    ("etcdserverpb.Auth", "RoleAdd", "unary"),
    ("etcdserverpb.Auth", "RoleGet", "unary"),
    ("etcdserverpb.Auth", "RoleList", "unary"),
    ("etcdserverpb.Auth", "RoleDelete", "unary"),
    ("etcdserverpb.Auth", "RoleGrantPermission", "unary"),
    ("etcdserverpb.Auth", "RoleRevokePermission", "unary"),
    ("v3lockpb.Lock", "Lock", "unary"),
    ("v3lockpb.Lock", "Unlock", "unary"),
    ("v3electionpb.Election", "Campaign", "unary"),
    ("v3electionpb.Election", "Proclaim", "unary"),
    ("v3electionpb.Election", "Leader", "unary"),
    ("v3electionpb.Election", "Observe", "server_stream"),
    ("v3electionpb.Election", "Resign", "unary"),
];

static HANDLED: [[AtomicU64; 17]; 46] = [const { [const { AtomicU64::new(0) }; 17] }; 46];

/// The index in [`METHODS`] of a gRPC path (`/etcdserverpb.KV/Range`).
pub fn method_index(path: &str) -> Option<usize> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    METHODS.iter().position(|&(s, m, _)| s == service && m == method)
}

fn count(method: usize, code: usize) {
    if code < CODES.len() {
        HANDLED[method][code].fetch_add(1, Ordering::Relaxed);
    }
}

fn code_of(v: Option<&axum::http::HeaderValue>) -> Option<usize> {
    v.and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok())
}

/// Counts the answer `resp` of RPC `method` now if it carries its `grpc-status` in the headers, otherwise
/// when its body yields the trailers.
pub fn counted(method: usize, resp: Response) -> Response {
    if let Some(code) = code_of(resp.headers().get("grpc-status")) {
        count(method, code);
        return resp;
    }
    resp.map(|body| Body::new(Counted { inner: body, method, done: false }))
}

/// A response body that counts its RPC when the trailers pass (or, if they never do, on drop).
struct Counted {
    inner: Body,
    method: usize,
    done: bool,
}

impl HttpBody for Counted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(code) = frame.trailers_ref().and_then(|t| code_of(t.get("grpc-status"))) {
                if !self.done {
                    self.done = true;
                    count(self.method, code);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.done {
            count(self.method, CANCELED);
        }
    }
}

/// The counter family in Prometheus text.
pub fn write(out: &mut String) {
    let name = "grpc_server_handled_total";
    let _ = writeln!(
        out,
        "# HELP {name} Total number of RPCs completed on the server, regardless of success or failure.\n# TYPE {name} counter"
    );
    for (i, (service, method, kind)) in METHODS.iter().enumerate() {
        for (code, code_name) in CODES.iter().enumerate() {
            let n = HANDLED[i][code].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}{{grpc_code=\"{code_name}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_methods() {
        assert_eq!(method_index("/etcdserverpb.KV/Range"), Some(0));
        assert_eq!(method_index("/v3electionpb.Election/Resign"), Some(45));
        assert_eq!(method_index("/etcdserverpb.Auth/RoleRevokePermission"), Some(38));
        assert_eq!(method_index("/etcdserverpb.KV/Nope"), None);
        assert_eq!(method_index("/v2/keys/foo"), None);
    }
}
