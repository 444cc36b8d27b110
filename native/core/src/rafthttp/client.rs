//! Requests from a follower to the leader's peer port (forwarded lease calls and promotes).
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
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

/// POSTs `body` to `url` + `path` and returns the answer's body; a non-2xx answer becomes the etcd error
/// whose message it carries.
pub async fn post(url: &str, path: &str, body: Vec<u8>) -> Result<Bytes, PeerHttpError> {
    let attempt = async {
        let addr = host_port(url).to_string();
        let stream = TcpStream::connect(&addr).await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        tokio::spawn(conn);
        let req = http::Request::post(path)
            .header("Host", addr)
            .header("Content-Type", "application/protobuf")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        let resp = send.send_request(req).await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?.to_bytes();
        if status.is_success() {
            return Ok(bytes);
        }
        let msg = String::from_utf8_lossy(&bytes).to_string();
        Err(PeerHttpError::Etcd(EtcdError::from_message(&msg)))
    };
    tokio::time::timeout(TIMEOUT, attempt).await.unwrap_or_else(|_| Err(PeerHttpError::Unreachable("timeout".into())))
}
