//! One HTTP/2 connection to an etcd endpoint and unary gRPC calls written straight onto its streams (the h2
//! crate): HEADERS, one DATA frame with the length-prefixed message and END_STREAM, then the answer's DATA
//! and trailers, `grpc-status` checked and the message decoded. tonic's `Channel` puts each call through a
//! buffer task and hyper spawns a task per request body; a call here is one stream and no task. The wire is
//! any gRPC client's. Used by [`super::Client`] and by the benchmark generator.
use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Request, Uri};
use prost::Message;
use tokio::net::TcpStream;
use tonic::{Code, Status};

/// A connection; clones share it.
#[derive(Clone)]
pub struct Conn {
    send: SendRequest<Bytes>,
    authority: Authority,
    secure: bool,
    /// Extra request headers (the auth `token`).
    pub metadata: HeaderMap,
}

/// Why a call failed, and whether its request can have reached the server (a call that was never sent is
/// safe to send again elsewhere, whatever it does).
#[derive(Debug)]
pub struct CallError {
    pub status: Status,
    pub sent: bool,
    /// The connection failed (not an answer from the server): it is of no further use.
    pub transport: bool,
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Status {
        e.status
    }
}

/// Connects to `endpoint` (`host:port`, `http://host:port`, or `https://host:port` with `tls`: ALPN h2, as
/// grpc-go dials).
pub async fn connect(endpoint: &str, tls: Option<&tokio_rustls::TlsConnector>) -> Result<Conn, String> {
    let secure = endpoint.starts_with("https://");
    let host = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://")).unwrap_or(endpoint);
    let host = host.trim_end_matches('/');
    let authority: Authority = host.parse().map_err(|e| format!("endpoint {endpoint}: {e}"))?;
    let tcp = TcpStream::connect(host).await.map_err(|e| format!("dial {endpoint}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let send = if secure {
        let tls = tls.ok_or_else(|| format!("endpoint {endpoint}: https without TLS settings"))?;
        let name = crate::transport::ClientTls::server_name(authority.host())?;
        let stream = tls.connect(name, tcp).await.map_err(|e| format!("tls {endpoint}: {e}"))?;
        handshake(stream, endpoint).await?
    } else {
        handshake(tcp, endpoint).await?
    };
    Ok(Conn { send, authority, secure, metadata: HeaderMap::new() })
}

async fn handshake<S>(io: S, endpoint: &str) -> Result<SendRequest<Bytes>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::handshake(io).await.map_err(|e| format!("dial {endpoint}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A TLS connector from client settings (the CA to trust, and a certificate and key to present, if any).
pub fn tls_connector(info: &crate::transport::TlsInfo) -> Result<tokio_rustls::TlsConnector, String> {
    let tls = crate::transport::ClientTls::new(info)?;
    let mut config = (*tls.config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

fn unavailable(e: h2::Error, sent: bool) -> CallError {
    CallError { status: Status::unavailable(e.to_string()), sent, transport: true }
}

fn internal(msg: impl ToString) -> CallError {
    CallError { status: Status::internal(msg.to_string()), sent: true, transport: false }
}

/// The call's outcome as `grpc-status` states it (tonic reads the code and the percent-encoded message), in
/// the trailers or in a trailers-only answer's headers; `None` when there is none.
fn grpc_status(headers: &HeaderMap) -> Option<Result<(), Status>> {
    let status = Status::from_header_map(headers)?;
    Some(if status.code() == Code::Ok { Ok(()) } else { Err(status) })
}

/// A bidirectional gRPC call (Watch, LeaseKeepAlive): messages written as DATA frames, answers read as
/// they arrive.
pub struct Stream {
    send: h2::SendStream<Bytes>,
    /// The answer's headers, until they arrive (a server may send them only with its first message).
    response: Option<h2::client::ResponseFuture>,
    recv: Option<h2::RecvStream>,
    buf: BytesMut,
}

fn frame<Q: Message>(msg: &Q) -> Result<Bytes, CallError> {
    let len = msg.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + len);
    frame.put_u8(0);
    frame.put_u32(len as u32);
    msg.encode(&mut frame).map_err(internal)?;
    Ok(frame.freeze())
}

impl Stream {
    /// Writes one message.
    pub fn send<Q: Message>(&mut self, msg: &Q) -> Result<(), CallError> {
        self.send.send_data(frame(msg)?, false).map_err(|e| unavailable(e, true))
    }

    /// Writes the last message and half-closes the call (a server-streaming call's one request).
    pub fn send_last<Q: Message>(&mut self, msg: &Q) -> Result<(), CallError> {
        self.send.send_data(frame(msg)?, true).map_err(|e| unavailable(e, true))
    }

    /// The next answer, or `None` when the server ended the call with status OK. Cancel-safe: a partial
    /// message stays buffered for the next call.
    pub async fn recv<R: Message + Default>(&mut self) -> Result<Option<R>, CallError> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
                if self.buf.len() >= 5 + len {
                    let msg = self.buf.split_to(5 + len);
                    return R::decode(&msg[5..]).map(Some).map_err(internal);
                }
            }
            if self.recv.is_none() {
                let response = self.response.as_mut().expect("headers pending while no body");
                let (head, recv) = response.await.map_err(|e| unavailable(e, true))?.into_parts();
                self.response = None;
                if let Some(outcome) = grpc_status(&head.headers) {
                    outcome.map_err(|status| CallError { status, sent: true, transport: false })?;
                    return Ok(None); // trailers-only OK: the call is over
                }
                self.recv = Some(recv);
            }
            let recv = self.recv.as_mut().expect("set above");
            match recv.data().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| unavailable(e, true))?;
                    let _ = recv.flow_control().release_capacity(chunk.len());
                    self.buf.extend_from_slice(&chunk);
                }
                None => {
                    let trailers = recv.trailers().await.map_err(|e| unavailable(e, true))?.unwrap_or_default();
                    let outcome = grpc_status(&trailers).unwrap_or(Ok(()));
                    return outcome.map(|_| None).map_err(|status| CallError { status, sent: true, transport: false });
                }
            }
        }
    }
}

impl Conn {
    /// Opens a bidirectional call of `path` (`/etcdserverpb.Watch/Watch`); its answer's headers are read with
    /// the first answer.
    pub async fn open_stream(&self, path: &'static str) -> Result<Stream, CallError> {
        let mut send = self.send.clone().ready().await.map_err(|e| unavailable(e, false))?;
        let (response, body) = send.send_request(self.request(path)?, false).map_err(|e| unavailable(e, false))?;
        Ok(Stream { send: body, response: Some(response), recv: None, buf: BytesMut::new() })
    }

    fn request(&self, path: &'static str) -> Result<Request<()>, CallError> {
        let uri = Uri::builder()
            .scheme(if self.secure { Scheme::HTTPS } else { Scheme::HTTP })
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(path))
            .build()
            .map_err(internal)?;
        let mut request = Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(internal)?;
        request.headers_mut().extend(self.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(request)
    }

    /// Whether the connection can still carry calls.
    pub fn is_open(&self) -> bool {
        // A clone's readiness probe: a closed connection answers with an error at once.
        let mut send = self.send.clone();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        !matches!(send.poll_ready(&mut cx), std::task::Poll::Ready(Err(_)))
    }

    /// Calls `path` (`/etcdserverpb.KV/Put`) with `req` and decodes the answer.
    pub async fn call<Q: Message, R: Message + Default>(&self, path: &'static str, req: &Q) -> Result<R, CallError> {
        let frame = frame(req)?;
        let request = self.request(path)?;
        let mut send = self.send.clone().ready().await.map_err(|e| unavailable(e, false))?;
        let (response, mut body_tx) = send.send_request(request, false).map_err(|e| unavailable(e, false))?;
        body_tx.send_data(frame, true).map_err(|e| unavailable(e, true))?;
        let (head, mut body) = response.await.map_err(|e| unavailable(e, true))?.into_parts();
        if let Some(outcome) = grpc_status(&head.headers) {
            outcome.map_err(|status| CallError { status, sent: true, transport: false })?; // trailers-only: no message follows
            return Err(internal("grpc-status 0 without a message"));
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| unavailable(e, true))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(|e| unavailable(e, true))?.unwrap_or_default();
        let outcome = grpc_status(&trailers).unwrap_or_else(|| Err(Status::internal("no grpc-status")));
        outcome.map_err(|status| CallError { status, sent: true, transport: false })?;
        if data.len() < 5 {
            return Err(internal("answer without a message"));
        }
        R::decode(&data[5..]).map_err(internal)
    }
}
