//! `/v2/members` (etcd's membersHandler): the membership as JSON, and changes to it through the same raft
//! conf changes as the v3 Cluster service. `/v2/machines` lists every member's client URLs.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use axum::Extension;

use super::with_cluster_id;
use crate::etcdserver::membership::Member;
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::v2store::json::push_str;
use crate::v3rpc::header::CertCommonName;
use crate::v3rpc::http::{go_error, json_response, method_not_allowed};

const MEMBERS_PREFIX: &str = "/v2/members";

fn push_strs(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, s);
    }
    out.push(']');
}

/// `{"id":"<hex>","name":...,"peerURLs":[...],"clientURLs":[...]}` in etcd's field order.
pub fn member_json(m: &Member, out: &mut String) {
    out.push_str("{\"id\":");
    push_str(out, &format!("{:x}", m.id));
    out.push_str(",\"name\":");
    push_str(out, &m.name);
    out.push_str(",\"peerURLs\":");
    push_strs(out, &m.peer_urls);
    out.push_str(",\"clientURLs\":");
    push_strs(out, &m.client_urls);
    out.push('}');
}

/// etcd's httptypes.HTTPError: `{"message":"..."}` with its status (no newline, unlike an encoded answer).
fn http_error(status: StatusCode, message: &str) -> Response<Body> {
    let mut body = String::from("{\"message\":");
    push_str(&mut body, message);
    body.push('}');
    json_response(status, body)
}

/// The error of a change that failed for a reason etcd's v2 API does not name: 500, as etcd's WriteError.
fn internal() -> Response<Body> {
    http_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The `peerURLs` of a create or update body, checked as etcd's types.NewURLs checks them; a refusal is
/// the status and message of etcd's HTTPError.
fn peer_urls(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, (StatusCode, String)> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if ct != "application/json" {
        let msg = format!("Bad Content-Type {ct}, accept application/json");
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let urls: Vec<String> = v
        .get("peerURLs")
        .and_then(|u| u.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for u in &urls {
        check_url(u).map_err(|msg| (StatusCode::BAD_REQUEST, msg))?;
    }
    let mut urls = urls;
    urls.sort();
    Ok(urls)
}

/// etcd's types.NewURLs rules: http or https, a host with a port, no path.
fn check_url(u: &str) -> Result<(), String> {
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!("URL scheme must be http, https, unix, or unixs: {u}"));
    };
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
        return Err(format!("URL scheme must be http, https, unix, or unixs: {u}"));
    }
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {u}"));
    }
    if !host.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
        return Err(format!("URL address does not have the form \"host:port\": {u}"));
    }
    Ok(())
}

pub async fn members(
    State(server): State<Arc<EtcdServer>>,
    cn: Option<Extension<CertCommonName>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    if !matches!(method.as_str(), "GET" | "POST" | "DELETE" | "PUT") {
        return method_not_allowed("GET,POST,DELETE,PUT");
    }
    // Changes need the v2 root role while v2 auth is on (etcd's hasWriteRootAccess).
    if method != Method::GET && !super::auth::has_root_access(&server, &headers, &cn).await {
        return super::auth::no_auth();
    }
    let resp = handle(&server, &method, uri.path(), &headers, &body).await;
    with_cluster_id(&server, resp)
}

async fn handle(server: &EtcdServer, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let rest = path.strip_prefix(MEMBERS_PREFIX).unwrap_or("").trim_start_matches('/');
    match *method {
        Method::GET => match rest {
            "" => {
                let mut out = String::from("{\"members\":[");
                for (i, m) in server.cluster.members().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    member_json(m, &mut out);
                }
                out.push_str("]}");
                json_response(StatusCode::OK, out + "\n")
            }
            "leader" => match server.cluster.member(server.leader()) {
                Some(m) if server.leader() != 0 => {
                    let mut out = String::new();
                    member_json(&m, &mut out);
                    json_response(StatusCode::OK, out + "\n")
                }
                _ => http_error(StatusCode::SERVICE_UNAVAILABLE, "During election"),
            },
            _ => http_error(StatusCode::NOT_FOUND, "Not found"),
        },
        Method::POST => {
            let urls = match peer_urls(headers, body) {
                Ok(u) => u,
                Err((status, msg)) => return http_error(status, &msg),
            };
            match server.add_member(urls, false).await {
                Ok((m, _)) => {
                    let mut out = String::new();
                    member_json(&m, &mut out);
                    json_response(StatusCode::CREATED, out + "\n")
                }
                Err(EtcdError::PeerUrlExists) => http_error(StatusCode::CONFLICT, "membership: peerURL exists"),
                Err(EtcdError::MemberExists) => http_error(StatusCode::CONFLICT, "membership: ID exists"),
                Err(_) => internal(),
            }
        }
        _ => {
            if rest.is_empty() {
                return go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                // etcd's getID: no Allow
            }
            let Ok(id) = u64::from_str_radix(rest, 16) else {
                return http_error(StatusCode::NOT_FOUND, &format!("No such member: {rest}"));
            };
            let r = if *method == Method::DELETE {
                server.remove_member(id).await
            } else {
                match peer_urls(headers, body) {
                    Ok(urls) => server.update_member(id, urls).await,
                    Err((status, msg)) => return http_error(status, &msg),
                }
            };
            match r {
                Ok(_) => Response::builder().status(StatusCode::NO_CONTENT).body(Body::empty()).expect("response"),
                Err(EtcdError::MemberRemoved) => {
                    http_error(StatusCode::GONE, &format!("Member permanently removed: {id:x}"))
                }
                Err(EtcdError::MemberNotFound) => http_error(StatusCode::NOT_FOUND, &format!("No such member: {id:x}")),
                Err(EtcdError::PeerUrlExists) => http_error(StatusCode::CONFLICT, "membership: peerURL exists"),
                Err(_) => internal(),
            }
        }
    }
}

/// `/v2/machines`: every member's client URLs, comma-separated (what etcd 0.4-era clients read).
pub async fn machines(State(server): State<Arc<EtcdServer>>, method: Method) -> Response<Body> {
    if !matches!(method.as_str(), "GET" | "HEAD") {
        return method_not_allowed("GET,HEAD");
    }
    let mut urls: Vec<String> = server.cluster.members().into_iter().flat_map(|m| m.client_urls).collect();
    urls.sort();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(urls.join(", ")))
        .expect("response")
}
