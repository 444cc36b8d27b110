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
}

/// `--conns` connections, round-robin over `--endpoints` (`host:port` or `http://host:port`).
pub async fn connect(args: &Args) -> Result<Vec<Unary>, String> {
    let mut out = Vec::new();
    for ep in crate::endpoints(args) {
        let ep = ep.as_str();
        let host = ep.strip_prefix("http://").unwrap_or(ep);
        let authority: Authority = host.parse().map_err(|e| format!("endpoint {ep}: {e}"))?;
        let tcp = TcpStream::connect(host).await.map_err(|e| format!("connect {ep}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = h2::client::handshake(tcp).await.map_err(|e| format!("connect {ep}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        out.push(Unary { send, authority });
    }
    Ok(out)
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
            .scheme(Scheme::HTTP)
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
