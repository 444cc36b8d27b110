//! `/v2/auth/*` (etcd's v2http authHandler) and the checks the v2 keys and members handlers make with it.
//!
//! While v2 auth is on, a caller is the user of its Basic `Authorization` header (password checked with
//! bcrypt) or, under `--client-cert-auth` with no header, the user named by its certificate's CN. The
//! auth API and membership changes need the root role; `/v2/keys` needs a role whose read (GET, HEAD) or
//! write patterns cover the key, and a request with no credentials gets the `guest` role's access.
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use axum::Extension;
use base64::Engine;
use serde::Serialize;

use super::form::unescape_path;
use crate::etcdserver::EtcdServer;
use crate::v2auth::{self as v2a, Failure, Role, User};
use crate::v2store::json::push_str;
use crate::v3rpc::header::CertCommonName;
use crate::v3rpc::http::{json_response, method_not_allowed};

const AUTH_PREFIX: &str = "/v2/auth";

type Cn = Option<Extension<CertCommonName>>;

/// The user and password of a Basic `Authorization` header (Go's Request.BasicAuth).
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("Basic ") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let (user, password) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn has_authorization(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).is_some_and(|v| !v.is_empty())
}

/// The caller: the Basic user with the right password, or (no header, a verified certificate) its CN's user.
async fn caller(server: &EtcdServer, headers: &HeaderMap, cn: &Cn) -> Option<User> {
    if let (false, Some(Extension(cn))) = (has_authorization(headers), cn) {
        return server.v2auth_user(&cn.0).ok();
    }
    let (name, password) = basic_auth(headers)?;
    let user = server.v2auth_user(&name).ok()?;
    EtcdServer::v2auth_check_password(&user, &password).await.then_some(user)
}

/// etcd's hasRootAccess: auth off, or a caller with the root role.
pub async fn has_root_access(server: &EtcdServer, headers: &HeaderMap, cn: &Cn) -> bool {
    if !server.v2auth_enabled() {
        return true;
    }
    let user = caller(server, headers, cn).await;
    user.is_some_and(|u| u.roles.iter().flatten().any(|r| r == v2a::ROOT_ROLE))
}

/// etcd's hasKeyPrefixAccess for `key` (the raw path after `/v2/keys`).
pub async fn has_key_access(
    server: &EtcdServer,
    headers: &HeaderMap,
    cn: &Cn,
    key: &str,
    recursive: bool,
    write: bool,
) -> bool {
    if !server.v2auth_enabled() {
        return true;
    }
    let user = if has_authorization(headers) {
        match caller(server, headers, cn).await {
            Some(u) => u,
            None => return false,
        }
    } else {
        match cn.as_ref().and_then(|Extension(cn)| server.v2auth_user(&cn.0).ok()) {
            Some(u) => u,
            // No credentials: the guest role, never recursively.
            None => return server.v2auth_role(v2a::GUEST_ROLE).is_ok_and(|r| r.has_key_access(key, write)),
        }
    };
    user.roles.iter().flatten().filter_map(|name| server.v2auth_role(name).ok()).any(|r| match recursive {
        true => r.has_recursive_access(key, write),
        false => r.has_key_access(key, write),
    })
}

/// etcd's writeNoAuth: 401 with no cluster id.
pub fn no_auth() -> Response<Body> {
    http_error(StatusCode::UNAUTHORIZED, "Insufficient credentials")
}

/// etcd's httptypes.HTTPError: `{"message":...}` (no newline).
fn http_error(status: StatusCode, message: &str) -> Response<Body> {
    let mut body = String::from("{\"message\":");
    push_str(&mut body, message);
    body.push('}');
    json_response(status, body)
}

/// etcd's v2http writeError: an auth refusal as an HTTPError, a store error as its v2 error JSON.
fn failure(f: Failure) -> Response<Body> {
    match f {
        Failure::Auth(e) => http_error(StatusCode::from_u16(e.status).expect("a status"), &e.message),
        Failure::Store(e) => super::keys::error_response(&e),
    }
}

/// A JSON answer as Go's json.Encoder writes it (a newline after the value).
fn encoded(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_string(value).expect("serializable") + "\n";
    json_response(status, body)
}

fn ok_empty() -> Response<Body> {
    json_response(StatusCode::OK, Body::empty())
}

fn with_cluster_id(server: &EtcdServer, resp: Response<Body>) -> Response<Body> {
    super::with_cluster_id(server, resp)
}

pub async fn auth(
    State(server): State<Arc<EtcdServer>>,
    cn: Cn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = unescape_path(uri.path());
    if let Some(to) = super::keys::redirect_target(&path, uri.query()) {
        return super::keys::moved_permanently(&method, &to);
    }
    let raw = &path[AUTH_PREFIX.len()..];
    if raw == "/enable" {
        return enable_disable(&server, &cn, &method, &headers).await;
    }
    // Go's mux: `/users` and `/roles` exactly, or anything under `/users/` and `/roles/` (cleaned).
    let sub = match raw {
        "/users" | "/roles" => raw.to_string(),
        _ if raw.starts_with("/users/") || raw.starts_with("/roles/") => crate::v2store::path::clean(raw),
        _ => String::new(),
    };
    let pieces: Vec<&str> = sub.split('/').collect();
    let (kind, name) = match pieces.as_slice() {
        ["", kind @ ("users" | "roles")] => (*kind, None),
        ["", kind @ ("users" | "roles"), name] => (*kind, Some(name.to_string())),
        ["", "users" | "roles", ..] => return http_error(StatusCode::BAD_REQUEST, "Invalid path"),
        _ => return crate::v3rpc::http::go_error(StatusCode::NOT_FOUND, "404 page not found"),
    };
    let allowed = if name.is_some() { "GET,PUT,DELETE" } else { "GET" };
    if !allowed.split(',').any(|m| m == method.as_str()) {
        return method_not_allowed(allowed);
    }
    if !has_root_access(&server, &headers, &cn).await {
        return no_auth();
    }
    let resp = match (kind, name) {
        ("users", None) => all_users(&server),
        (_, None) => all_roles(&server),
        ("users", Some(name)) => for_user(&server, &method, &name, &body).await,
        (_, Some(name)) => for_role(&server, &method, &name, &body).await,
    };
    with_cluster_id(&server, resp)
}

/// A user with its roles spelled out (etcd's userWithRoles; roles omitted when none).
#[derive(Serialize)]
struct UserWithRoles {
    user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<Role>,
}

fn all_users(server: &EtcdServer) -> Response<Body> {
    let mut users = Vec::new();
    for name in server.v2auth_users() {
        let u = match server.v2auth_user(&name) {
            Ok(u) => u,
            Err(f) => return failure(f),
        };
        let roles = u.roles.iter().flatten().filter_map(|r| server.v2auth_role(r).ok()).collect();
        users.push(UserWithRoles { user: u.user, roles });
    }
    #[derive(Serialize)]
    struct Users {
        users: Option<Vec<UserWithRoles>>,
    }
    encoded(StatusCode::OK, &Users { users: (!users.is_empty()).then_some(users) })
}

fn all_roles(server: &EtcdServer) -> Response<Body> {
    let mut roles = Vec::new();
    for name in server.v2auth_roles() {
        match server.v2auth_role(&name) {
            Ok(r) => roles.push(r),
            Err(f) => return failure(f),
        }
    }
    #[derive(Serialize)]
    struct Roles {
        roles: Vec<Role>,
    }
    encoded(StatusCode::OK, &Roles { roles })
}

async fn for_user(server: &EtcdServer, method: &Method, name: &str, body: &[u8]) -> Response<Body> {
    match *method {
        Method::GET => {
            let u = match server.v2auth_user(name) {
                Ok(u) => u,
                Err(f) => return failure(f),
            };
            let mut roles = Vec::new();
            for r in u.roles.iter().flatten() {
                match server.v2auth_role(r) {
                    Ok(r) => roles.push(r),
                    Err(f) => return failure(f),
                }
            }
            encoded(StatusCode::OK, &UserWithRoles { user: u.user, roles })
        }
        Method::PUT => {
            let Some(u) = v2a::decode::<User>(body) else {
                return http_error(StatusCode::BAD_REQUEST, "Invalid JSON in request body.");
            };
            if u.user != name {
                return http_error(StatusCode::BAD_REQUEST, "User JSON name does not match the name in the URL");
            }
            let changes =
                u.grant.as_ref().is_some_and(|g| !g.is_empty()) || u.revoke.as_ref().is_some_and(|r| !r.is_empty());
            let has_roles = u.roles.as_ref().is_some_and(|r| !r.is_empty());
            let r = match (changes, has_roles) {
                (false, true) => server.v2auth_create_user(u).await.map(|u| (u, false)),
                (false, false) => server.v2auth_create_or_update_user(u).await,
                (true, true) => {
                    return http_error(StatusCode::BAD_REQUEST, "User JSON contains both roles and grant/revoke")
                }
                (true, false) => server.v2auth_update_user(u).await.map(|u| (u, false)),
            };
            match r {
                Ok((mut out, created)) => {
                    out.password.clear();
                    encoded(if created { StatusCode::CREATED } else { StatusCode::OK }, &out)
                }
                Err(f) => failure(f),
            }
        }
        _ => server.v2auth_delete_user(name).await.map_or_else(failure, |_| ok_empty()),
    }
}

async fn for_role(server: &EtcdServer, method: &Method, name: &str, body: &[u8]) -> Response<Body> {
    match *method {
        Method::GET => server.v2auth_role(name).map_or_else(failure, |r| encoded(StatusCode::OK, &r)),
        Method::PUT => {
            let Some(r) = v2a::decode::<Role>(body) else {
                return http_error(StatusCode::BAD_REQUEST, "Invalid JSON in request body.");
            };
            if r.role != name {
                return http_error(StatusCode::BAD_REQUEST, "Role JSON name does not match the name in the URL");
            }
            if v2a::Permissions::is_empty(&r.grant) && v2a::Permissions::is_empty(&r.revoke) {
                return match server.v2auth_create_role(&r).await {
                    Ok(()) => encoded(StatusCode::CREATED, &r),
                    Err(f) => failure(f),
                };
            }
            if !v2a::Permissions::is_empty(&Some(r.permissions.clone())) {
                return http_error(StatusCode::BAD_REQUEST, "Role JSON contains both permissions and grant/revoke");
            }
            server.v2auth_update_role(&r).await.map_or_else(failure, |out| encoded(StatusCode::OK, &out))
        }
        _ => server.v2auth_delete_role(name).await.map_or_else(failure, |_| ok_empty()),
    }
}

/// `/v2/auth/enable`: GET for anyone, PUT (enable) and DELETE (disable) for root.
async fn enable_disable(server: &EtcdServer, cn: &Cn, method: &Method, headers: &HeaderMap) -> Response<Body> {
    if !matches!(*method, Method::GET | Method::PUT | Method::DELETE) {
        return method_not_allowed("GET,PUT,DELETE");
    }
    if *method != Method::GET && !has_root_access(server, headers, cn).await {
        return no_auth();
    }
    let resp = match *method {
        Method::GET => json_response(StatusCode::OK, format!("{{\"enabled\":{}}}\n", server.v2auth_enabled())),
        Method::PUT => server.v2auth_enable().await.map_or_else(failure, |_| ok_empty()),
        _ => server.v2auth_disable().await.map_or_else(failure, |_| ok_empty()),
    };
    with_cluster_id(server, resp)
}
