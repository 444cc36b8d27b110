//! Requests from a follower to the leader's peer port (forwarded lease calls and promotes).
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;

use super::peer::host_port;
use crate::etcdserver::EtcdError;

#[derive(Debug)]
pub enum PeerHttpError {
    /// The peer could not be reached or did not answer in time.
    Unreachable(String),
    /// The peer answered with an etcd error.
    Etcd(EtcdError),
}

const TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per peer address (keep-alives are frequent; a connection each would not do).
const IDLE_PER_PEER: usize = 8;

type Sender = SendRequest<Full<Bytes>>;

/// Idle keep-alive connections to peers, by `host:port`.
fn idle() -> &'static Mutex<HashMap<String, Vec<Sender>>> {
    static IDLE: OnceLock<Mutex<HashMap<String, Vec<Sender>>>> = OnceLock::new();
    IDLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// An idle connection to `addr` that is still open, or a new one.
async fn connection(addr: &str) -> Result<Sender, PeerHttpError> {
    loop {
        let Some(mut s) = idle().lock().get_mut(addr).and_then(Vec::pop) else {
            break;
        };
        if s.ready().await.is_ok() {
            return Ok(s);
        }
    }
    let stream = TcpStream::connect(addr).await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
    tokio::spawn(conn);
    Ok(send)
}

/// POSTs `body` to `url` + `path` and returns the answer's body; a non-2xx answer becomes the etcd error
/// whose message it carries.
pub async fn post(url: &str, path: &str, body: Vec<u8>) -> Result<Bytes, PeerHttpError> {
    let attempt = async {
        let addr = host_port(url).to_string();
        let mut send = connection(&addr).await?;
        let req = http::Request::post(path)
            .header("Host", addr.as_str())
            .header("Content-Type", "application/protobuf")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        let resp = send.send_request(req).await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?.to_bytes();
        let mut pool = idle().lock();
        let list = pool.entry(addr).or_default();
        if list.len() < IDLE_PER_PEER {
            list.push(send);
        }
        drop(pool);
        if status.is_success() {
            return Ok(bytes);
        }
        let msg = String::from_utf8_lossy(&bytes).to_string();
        Err(PeerHttpError::Etcd(EtcdError::from_message(&msg)))
    };
    tokio::time::timeout(TIMEOUT, attempt).await.unwrap_or_else(|_| Err(PeerHttpError::Unreachable("timeout".into())))
}
