//! [`Dialer`]: connections to peers (plain, or TLS for https peer URLs), for the raft streams and for requests
//! from a follower to the leader's peer port (forwarded lease calls and promotes).
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::peer::host_port;
use crate::etcdserver::EtcdError;
use crate::transport::ClientTls;

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

/// A connection to a peer: plain TCP, or TLS when its URL is https.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}
pub type PeerStream = Box<dyn PeerIo>;

/// How this member reaches its peers: TLS for `https` peer URLs (its `--peer-*` certificate and CA), and the
/// idle HTTP connections kept per peer address.
pub struct Dialer {
    tls: ClientTls,
    idle: Mutex<HashMap<String, Vec<Sender>>>,
    /// Sent on every request as etcd's peers send them (`X-Etcd-Cluster-ID`, `X-Server-From`): the leader
    /// refuses requests from another cluster or from a non-member.
    cluster_id: u64,
    member_id: u64,
}

impl Dialer {
    pub fn new(tls: ClientTls, cluster_id: u64, member_id: u64) -> Dialer {
        Dialer { tls, idle: Mutex::new(HashMap::new()), cluster_id, member_id }
    }

    /// A connection to `url`'s host and port, through TLS for `https://` (verified against the peer CA by the
    /// URL's host, unless auto-TLS skips verification).
    pub async fn connect(&self, url: &str) -> std::io::Result<PeerStream> {
        let addr = host_port(url);
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        if !url.starts_with("https://") {
            return Ok(Box::new(tcp));
        }
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let name = ClientTls::server_name(host).map_err(std::io::Error::other)?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.config.clone()).connect(name, tcp).await?;
        Ok(Box::new(tls))
    }

    /// An idle connection to `url` that is still open, or a new one.
    async fn connection(&self, url: &str) -> Result<Sender, PeerHttpError> {
        loop {
            let Some(mut s) = self.idle.lock().get_mut(url).and_then(Vec::pop) else {
                break;
            };
            if s.ready().await.is_ok() {
                return Ok(s);
            }
        }
        let stream = self.connect(url).await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// POSTs `body` to `url` + `path` and returns the answer's body; a non-2xx answer becomes the etcd error
    /// whose message it carries.
    pub async fn post(&self, url: &str, path: &str, body: Vec<u8>) -> Result<Bytes, PeerHttpError> {
        let attempt = async {
            let addr = host_port(url).to_string();
            let mut send = self.connection(url).await?;
            let req = http::Request::post(path)
                .header("Host", addr.as_str())
                .header("Content-Type", "application/protobuf")
                .header("X-Etcd-Cluster-ID", format!("{:x}", self.cluster_id))
                .header("X-Server-From", format!("{:x}", self.member_id))
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
            let resp = send.send_request(req).await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?;
            let status = resp.status();
            let bytes =
                resp.into_body().collect().await.map_err(|e| PeerHttpError::Unreachable(e.to_string()))?.to_bytes();
            let mut pool = self.idle.lock();
            let list = pool.entry(url.to_string()).or_default();
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
        tokio::time::timeout(TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(PeerHttpError::Unreachable("timeout".into())))
    }
}
