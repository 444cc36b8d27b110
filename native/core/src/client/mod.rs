//! A native etcd v3 client: the per-request path of `pyetcd_fast.Client` (encoding, HTTP/2, decoding), with
//! no Python in it. Works against any etcd 3.x, not only ours.
//!
//! Contract:
//!
//! 1. One HTTP/2 connection at a time, to the first endpoint that answers, in the order given; a call that
//!    finds it broken moves on to the next endpoint (failover). A call that was never sent is sent again
//!    there, whatever it does; one that may have reached the server is retried only if it is a read.
//! 2. Every call has a deadline (`Status::deadline_exceeded` when it passes).
//! 3. With a user and password, the client authenticates before its first call and again when the server
//!    says the token is invalid or expired (simple tokens expire after `--auth-token-ttl` unused), then
//!    retries the call once.
//! 4. A forked child never uses its parent's connection: its first call dials anew.
//! 5. Errors are gRPC statuses as etcd sends them (code and `etcdserver: ...` message); callers map them.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use tonic::{Code, Status};

use crate::pb::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};

pub mod conn;
pub mod lease;
pub mod snapshot;
pub mod watch;

pub use conn::{CallError, Conn};

#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// `host:port`, `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    pub tls: Option<crate::transport::TlsInfo>,
    pub dial_timeout: Duration,
    /// The default deadline of a call.
    pub timeout: Duration,
    pub user: Option<(String, String)>,
}

pub struct Client {
    cfg: ClientConfig,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The connection in use and the index of its endpoint.
    conn: tokio::sync::Mutex<Option<(usize, Conn)>>,
    /// Where the next dial starts.
    next: AtomicUsize,
    /// The auth token, once authenticated.
    token: parking_lot::Mutex<Option<http::HeaderValue>>,
    /// The process the connection belongs to: a forked child dials its own.
    pid: std::sync::atomic::AtomicU32,
}

/// Whether a status says the token is no good any more (etcd's ErrInvalidAuthToken, ErrAuthOldRevision).
fn token_rejected(s: &Status) -> bool {
    s.code() == Code::Unauthenticated
        && (s.message().contains("invalid auth token") || s.message().contains("revision of auth store is old"))
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, String> {
        if cfg.endpoints.is_empty() {
            return Err("no endpoints".into());
        }
        let tls = match &cfg.tls {
            Some(info) => Some(conn::tls_connector(info)?),
            None if cfg.endpoints.iter().any(|e| e.starts_with("https://")) => {
                Some(conn::tls_connector(&Default::default())?)
            }
            None => None,
        };
        let token = parking_lot::Mutex::new(None);
        let pid = std::sync::atomic::AtomicU32::new(std::process::id());
        Ok(Client { cfg, tls, conn: tokio::sync::Mutex::new(None), next: AtomicUsize::new(0), token, pid })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.cfg.endpoints
    }

    /// The connection in use, or a new one to the first endpoint that answers (starting after the last one
    /// that failed).
    async fn conn(&self) -> Result<Conn, Status> {
        let mut cur = self.conn.lock().await;
        let pid = std::process::id();
        if self.pid.swap(pid, Ordering::Relaxed) != pid {
            // Forked: the parent's connection and its driving task are not ours to use.
            std::mem::forget(cur.take());
        }
        if let Some((_, c)) = cur.as_ref().filter(|(_, c)| c.is_open()) {
            return Ok(self.with_token(c.clone()));
        }
        let n = self.cfg.endpoints.len();
        let start = self.next.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let ep = &self.cfg.endpoints[idx];
            match tokio::time::timeout(self.cfg.dial_timeout, conn::connect(ep, self.tls.as_ref())).await {
                Ok(Ok(c)) => {
                    *cur = Some((idx, c.clone()));
                    return Ok(self.with_token(c));
                }
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("dial {ep}: timed out"),
            }
        }
        Err(Status::unavailable(format!("no endpoint answered: {last}")))
    }

    fn with_token(&self, mut c: Conn) -> Conn {
        if let Some(t) = self.token.lock().clone() {
            c.metadata.insert("token", t);
        }
        c
    }

    /// Drops the connection to endpoint `idx` (if still the one in use) so the next call dials the next one.
    async fn broken(&self) {
        let mut cur = self.conn.lock().await;
        if let Some((idx, _)) = cur.take() {
            self.next.store(idx + 1, Ordering::Relaxed);
        }
    }

    async fn authenticate(&self) -> Result<(), Status> {
        let Some((name, password)) = self.cfg.user.clone() else {
            return Ok(());
        };
        *self.token.lock() = None;
        let c = self.conn().await?;
        let req = AuthenticateRequest { name, password };
        let resp: AuthenticateResponse = c.call("/etcdserverpb.Auth/Authenticate", &req).await?;
        let token = http::HeaderValue::from_str(&resp.token).map_err(|e| Status::internal(e.to_string()))?;
        *self.token.lock() = Some(token);
        Ok(())
    }

    /// One unary call with the client's deadline (`timeout` overrides it), failover and token renewal.
    /// `read` says the call changes nothing, so it may be sent again after it may have reached a server.
    pub async fn call<Q: Message, R: Message + Default>(
        &self,
        path: &'static str,
        req: &Q,
        read: bool,
        timeout: Option<Duration>,
    ) -> Result<R, Status> {
        let deadline = timeout.unwrap_or(self.cfg.timeout);
        match tokio::time::timeout(deadline, self.call_retrying(path, req, read)).await {
            Ok(r) => r,
            Err(_) => Err(Status::deadline_exceeded("context deadline exceeded")),
        }
    }

    async fn call_retrying<Q: Message, R: Message + Default>(
        &self,
        path: &'static str,
        req: &Q,
        read: bool,
    ) -> Result<R, Status> {
        if self.cfg.user.is_some() && self.token.lock().is_none() {
            self.authenticate().await?;
        }
        let mut renewed = false;
        let mut failovers = 0;
        loop {
            let c = self.conn().await?;
            match c.call(path, req).await {
                Ok(r) => return Ok(r),
                Err(e) if token_rejected(&e.status) && self.cfg.user.is_some() && !renewed => {
                    renewed = true;
                    self.authenticate().await?;
                }
                Err(e) if e.transport => {
                    self.broken().await;
                    failovers += 1;
                    if (e.sent && !read) || failovers > self.cfg.endpoints.len() {
                        return Err(e.status);
                    }
                }
                Err(e) => return Err(e.status),
            }
        }
    }
}
