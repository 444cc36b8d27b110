//! `/v2/keys`: etcd's keysHandler. A request's form becomes a v2 request as etcd's parseKeyRequest builds
//! it (same checks, same error codes and causes); writes and quorum reads go through raft, plain reads and
//! watches use the member's tree. Every answer carries `X-Etcd-Cluster-Id`; an event also `X-Etcd-Index`,
//! `X-Raft-Index` and `X-Raft-Term`.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use axum::Extension;
use tokio_stream::Stream;

use super::form::{unescape_path, Form};
use super::with_cluster_id;
use crate::etcdserver::v2::now_nanos;
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::Request;
use crate::v2store::error::*;
use crate::v2store::{Action, Event, V2Error, Watcher};
use crate::v3rpc::header::CertCommonName;
use crate::v3rpc::http::{json_response, method_not_allowed};

const KEYS_PREFIX: &str = "/v2/keys";
/// A wait ends with an empty body after this long (etcd's defaultWatchTimeout).
const WATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// A parsed request and its `noValueOnSuccess`.
struct Parsed {
    req: Request,
    no_value_on_success: bool,
}

fn invalid(code: u32, cause: &str) -> V2Error {
    V2Error::new(code, cause, 0)
}

/// etcd's parseKeyRequest.
fn parse(method: &str, path: &str, f: &Form) -> Result<Parsed, V2Error> {
    let key = crate::v2store::path::clean(&path[KEYS_PREFIX.len()..]);
    let prev_index = f.uint64("prevIndex").ok_or_else(|| invalid(INDEX_NAN, r#"invalid value for "prevIndex""#))?;
    let since = f.uint64("waitIndex").ok_or_else(|| invalid(INDEX_NAN, r#"invalid value for "waitIndex""#))?;
    let flag =
        |name: &str| f.bool(name).ok_or_else(|| invalid(INVALID_FIELD, &format!(r#"invalid value for "{name}""#)));
    let (recursive, sorted, wait, dir, quorum, stream) =
        (flag("recursive")?, flag("sorted")?, flag("wait")?, flag("dir")?, flag("quorum")?, flag("stream")?);
    if wait && method != "GET" {
        return Err(invalid(INVALID_FIELD, r#""wait" can only be used with GET requests"#));
    }
    let prev_value = f.value("prevValue");
    if f.has("prevValue") && prev_value.is_empty() {
        return Err(invalid(PREV_VALUE_REQUIRED, r#""prevValue" cannot be empty"#));
    }
    let no_value_on_success = flag("noValueOnSuccess")?;
    let ttl = if f.value("ttl").is_empty() {
        None
    } else {
        Some(f.uint64("ttl").ok_or_else(|| invalid(TTL_NAN, r#"invalid value for "ttl""#))?)
    };
    let prev_exist = if f.has("prevExist") {
        Some(f.bool("prevExist").ok_or_else(|| invalid(INVALID_FIELD, "invalid value for prevExist"))?)
    } else {
        None
    };
    let refresh = if f.has("refresh") {
        let r = f.bool("refresh").ok_or_else(|| invalid(INVALID_FIELD, "invalid value for refresh"))?;
        if r && f.has("value") && !f.value("value").is_empty() {
            return Err(invalid(REFRESH_VALUE, "A value was provided on a refresh"));
        }
        if r && ttl.is_none() {
            return Err(invalid(REFRESH_TTL_REQUIRED, "No TTL value set"));
        }
        Some(r)
    } else {
        None
    };
    let expiration = ttl.map_or(0, |t| now_nanos().saturating_add((t as i64).saturating_mul(1_000_000_000)));
    let req = Request {
        method: method.to_string(),
        path: key,
        val: f.value("value").to_string(),
        dir,
        prev_value: prev_value.to_string(),
        prev_index,
        prev_exist,
        expiration,
        wait,
        since,
        recursive,
        sorted,
        quorum,
        stream,
        refresh,
        ..Default::default()
    };
    Ok(Parsed { req, no_value_on_success })
}

/// etcd's v2error WriteTo: the error JSON and its index.
pub(crate) fn error_response(e: &V2Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).expect("an HTTP status");
    let mut resp = json_response(status, e.to_json() + "\n");
    resp.headers_mut().insert("X-Etcd-Index", e.index.into());
    resp
}

fn event_headers(server: &EtcdServer, etcd_index: u64, status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Etcd-Index", etcd_index.to_string())
        .header("X-Raft-Index", server.raft_index().to_string())
        .header("X-Raft-Term", server.term().to_string())
}

/// etcd's writeKeyEvent: 201 for a create (or a set of a new key); `noValueOnSuccess` drops the nodes of
/// a write's answer.
fn event_response(server: &EtcdServer, mut e: Event, no_value: bool, head: bool) -> Response<Body> {
    let created = e.action == Action::Create || (e.action == Action::Set && e.prev_node.is_none());
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let b = event_headers(server, e.etcd_index, status);
    if head {
        return b.body(Body::empty()).expect("response");
    }
    let writes = matches!(e.action, Action::Set | Action::CompareAndSwap | Action::Create | Action::Update);
    let body = if no_value && writes {
        e.prev_node = None;
        format!("{{\"action\":\"{}\"}}\n", e.action.as_str())
    } else {
        e.to_json() + "\n"
    };
    b.body(Body::from(body)).expect("response")
}

pub async fn keys(
    State(server): State<Arc<EtcdServer>>,
    cn: Option<Extension<CertCommonName>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let resp = async {
        let server = &server;
        if !matches!(method.as_str(), "HEAD" | "GET" | "PUT" | "POST" | "DELETE") {
            return method_not_allowed("HEAD,GET,PUT,POST,DELETE");
        }
        let path = unescape_path(uri.path());
        if let Some(to) = redirect_target(&path, uri.query()) {
            return moved_permanently(&method, &to);
        }
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let form = Form::parse(method.as_str(), ct, uri.query(), &body);
        let Parsed { req, no_value_on_success } = match parse(method.as_str(), &path, &form) {
            Ok(p) => p,
            Err(e) => return error_response(&e),
        };
        let write = !matches!(method, Method::GET | Method::HEAD);
        let key = &path[KEYS_PREFIX.len()..];
        if !super::auth::has_key_access(server, &headers, &cn, key, req.recursive, write).await {
            return error_response(&V2Error::new(UNAUTHORIZED, "Insufficient credentials", 0));
        }
        let head = method == Method::HEAD;
        let local_read = head || (method == Method::GET && !req.quorum);
        if local_read && req.wait {
            return match server.v2.lock().watch(&req.path, req.recursive, req.stream, req.since) {
                Ok(w) => watch_response(server, w, req.stream),
                Err(e) => error_response(&e),
            };
        }
        let result = if local_read {
            server.v2.lock().get(&req.path, req.recursive, now_nanos())
        } else {
            let mut req = req;
            if req.method == "GET" {
                req.method = "QGET".into();
            }
            server.v2_propose(req).await
        };
        match result {
            Ok(e) => event_response(server, e, no_value_on_success, head),
            Err(e) => error_response(&e),
        }
    }
    .await;
    with_cluster_id(&server, resp)
}

/// Go's ServeMux answers a path that is not clean (`//`, `.`, `..`; a trailing slash is kept) with a
/// redirect to the clean one, which `curl -L` follows.
pub(super) fn redirect_target(path: &str, query: Option<&str>) -> Option<String> {
    let mut clean = crate::v2store::path::clean(path);
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    if clean == path {
        return None;
    }
    Some(match query {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    })
}

/// Go's http.Redirect with 301: an HTML body for GET only.
pub(super) fn moved_permanently(method: &Method, to: &str) -> Response<Body> {
    let b = Response::builder().status(StatusCode::MOVED_PERMANENTLY).header(header::LOCATION, to);
    if *method == Method::GET || *method == Method::HEAD {
        let b = b.header(header::CONTENT_TYPE, "text/html; charset=utf-8");
        let html = to.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;");
        let body = if *method == Method::GET {
            format!("<a href=\"{html}\">Moved Permanently</a>.\n\n")
        } else {
            String::new()
        };
        return b.body(Body::from(body)).expect("response");
    }
    b.body(Body::empty()).expect("response")
}

/// etcd's handleKeyWatch: headers at once, then one event (or, with `stream`, each event) as a JSON line;
/// the body ends when the watcher is dropped, the client goes away, or after [`WATCH_TIMEOUT`].
fn watch_response(server: &Arc<EtcdServer>, w: Watcher, stream: bool) -> Response<Body> {
    let b = event_headers(server, w.start_index, StatusCode::OK);
    let body = WatchBody {
        server: server.clone(),
        watcher: Some(w),
        stream,
        timeout: Box::pin(tokio::time::sleep(WATCH_TIMEOUT)),
    };
    b.body(Body::from_stream(body)).expect("response")
}

struct WatchBody {
    server: Arc<EtcdServer>,
    watcher: Option<Watcher>,
    stream: bool,
    timeout: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for WatchBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.timeout.as_mut().poll(cx).is_ready() {
            self.finish();
            return Poll::Ready(None);
        }
        let Some(w) = self.watcher.as_mut() else {
            return Poll::Ready(None);
        };
        match w.rx.poll_recv(cx) {
            Poll::Ready(Some(e)) => {
                if !self.stream {
                    self.finish();
                }
                Poll::Ready(Some(Ok(Bytes::from(e.to_json() + "\n"))))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl WatchBody {
    /// Unregisters the watcher (a no-op if the store already dropped it).
    fn finish(&mut self) {
        if let Some(w) = self.watcher.take() {
            self.server.v2.lock().hub.remove(&w.key, w.id);
        }
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: &str) -> Form {
        Form::parse("GET", None, Some(q), b"")
    }

    #[test]
    fn parse_errors_are_etcds() {
        let cases = [
            ("PUT", "ttl=abc", 202, r#"invalid value for "ttl""#),
            ("PUT", "prevIndex=x", 203, r#"invalid value for "prevIndex""#),
            ("GET", "waitIndex=", 203, r#"invalid value for "waitIndex""#),
            ("GET", "recursive=yes", 209, r#"invalid value for "recursive""#),
            ("PUT", "wait=true", 209, r#""wait" can only be used with GET requests"#),
            ("PUT", "prevValue=", 201, r#""prevValue" cannot be empty"#),
            ("PUT", "prevExist=maybe", 209, "invalid value for prevExist"),
            ("PUT", "refresh=true&value=x&ttl=5", 211, "A value was provided on a refresh"),
            ("PUT", "refresh=true", 212, "No TTL value set"),
        ];
        for (method, q, code, cause) in cases {
            let e = parse(method, "/v2/keys/foo", &form(q)).err().unwrap_or_else(|| panic!("{q} parsed"));
            assert_eq!((e.code, e.cause.as_str(), e.index), (code, cause, 0), "{q}");
        }
    }

    #[test]
    fn parse_fills_the_request() {
        let p = parse("PUT", "/v2/keys/a//b/", &form("value=v&prevExist=false&ttl=&dir=true")).expect("parse");
        assert_eq!(p.req.path, "/a/b");
        assert_eq!((p.req.val.as_str(), p.req.prev_exist, p.req.expiration, p.req.dir), ("v", Some(false), 0, true));
        let p = parse("PUT", "/v2/keys", &form("ttl=5&refresh=true")).expect("parse");
        assert_eq!((p.req.path.as_str(), p.req.refresh), ("/", Some(true)));
        assert!(p.req.expiration > now_nanos());
    }
}
