//! Unary gRPC calls written straight onto HTTP/2 streams (the h2 crate), for the closed-loop workloads.
//!
//! The generator shares the two cores with the server it drives, so every microsecond it spends per
//! request is taken from the server. tonic's `Channel` puts each call through a buffer task and hyper
//! spawns a task to pipe each request body; here a call is one stream: HEADERS, one DATA frame with the
//! length-prefixed message and END_STREAM, then the response's DATA and trailers, `grpc-status` checked
//! and the message decoded. The wire is the same as any gRPC client's; streaming workloads keep tonic.
use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Uri};
use prost::Message;
use tokio::net::TcpStream;
use tonic::{Code, Status};

use crate::Args;

/// One HTTP/2 connection to an endpoint; clones share it.
#[derive(Clone)]
pub struct Unary {
    send: SendRequest<Bytes>,
    authority: Authority,
    secure: bool,
}

/// `--conns` connections, round-robin over `--endpoints` (`host:port`, `http://host:port`, or
/// `https://host:port` with the server's CA in `--cacert`: TLS with ALPN h2, as grpc-go dials).
pub async fn connect(args: &Args) -> Result<Vec<Unary>, String> {
    let mut out = Vec::new();
    let mut tls = None;
    for ep in crate::endpoints(args) {
        let ep = ep.as_str();
        let secure = ep.starts_with("https://");
        let host = ep.strip_prefix("http://").or_else(|| ep.strip_prefix("https://")).unwrap_or(ep);
        let authority: Authority = host.parse().map_err(|e| format!("endpoint {ep}: {e}"))?;
        let tcp = TcpStream::connect(host).await.map_err(|e| format!("connect {ep}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let send = if secure {
            if tls.is_none() {
                tls = Some(connector(args)?);
            }
            let name = etcd_core::transport::ClientTls::server_name(authority.host())?;
            let stream = tls.as_ref().unwrap().connect(name, tcp).await.map_err(|e| format!("tls {ep}: {e}"))?;
            handshake(stream, ep).await?
        } else {
            handshake(tcp, ep).await?
        };
        out.push(Unary { send, authority, secure });
    }
    Ok(out)
}

async fn handshake<S>(io: S, ep: &str) -> Result<SendRequest<Bytes>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::handshake(io).await.map_err(|e| format!("connect {ep}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// TLS to servers whose CA is `--cacert`.
fn connector(args: &Args) -> Result<tokio_rustls::TlsConnector, String> {
    let info = etcd_core::transport::TlsInfo { trusted_ca_file: args.str("cacert", ""), ..Default::default() };
    let tls = etcd_core::transport::ClientTls::new(&info)?;
    let mut config = (*tls.config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

fn unavailable(e: h2::Error) -> Status {
    Status::unavailable(e.to_string())
}

/// The call's outcome as `grpc-status` states it (tonic reads the code and the percent-encoded message), in
/// the trailers or in a trailers-only answer's headers; `None` when there is none.
fn grpc_status(headers: &HeaderMap) -> Option<Result<(), Status>> {
    let status = Status::from_header_map(headers)?;
    Some(if status.code() == Code::Ok { Ok(()) } else { Err(status) })
}

impl Unary {
    /// Calls `path` (`/etcdserverpb.KV/Put`) with `req` and decodes the answer.
    pub async fn call<Q: Message, R: Message + Default>(&self, path: &'static str, req: &Q) -> Result<R, Status> {
        let len = req.encoded_len();
        let mut frame = BytesMut::with_capacity(5 + len);
        frame.put_u8(0);
        frame.put_u32(len as u32);
        req.encode(&mut frame).map_err(|e| Status::internal(e.to_string()))?;
        let uri = Uri::builder()
            .scheme(if self.secure { Scheme::HTTPS } else { Scheme::HTTP })
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(path))
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        let request = Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut send = self.send.clone().ready().await.map_err(unavailable)?;
        let (response, mut body_tx) = send.send_request(request, false).map_err(unavailable)?;
        body_tx.send_data(frame.freeze(), true).map_err(unavailable)?;
        let (head, mut body) = response.await.map_err(unavailable)?.into_parts();
        if let Some(outcome) = grpc_status(&head.headers) {
            outcome?; // trailers-only: no message follows
            return Err(Status::internal("grpc-status 0 without a message"));
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(unavailable)?.unwrap_or_default();
        grpc_status(&trailers).unwrap_or_else(|| Err(Status::internal("no grpc-status")))?;
        if data.len() < 5 {
            return Err(Status::internal("answer without a message"));
        }
        R::decode(&data[5..]).map_err(|e| Status::internal(e.to_string()))
    }
}
