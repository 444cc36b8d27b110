//! etcdserverpb.Watch: one bidirectional stream carries many watchers. Requests are handled as they arrive;
//! responses come from the store's fan-out through the stream's queue, already encoded but for the header's
//! ids, which are filled here. [`WatchGrpc`] serves the gRPC method itself (the generated server would turn
//! every queued response back into a WatchResponse before encoding it again).
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::header::{set_ids, Credentials};
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::mvcc::watcher::{Queued, WatchReceiver};
use crate::pb::authpb::permission::Type as PermType;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};

#[derive(Clone)]
pub struct WatchService {
    pub server: Arc<EtcdServer>,
}

/// The outbound half: drains the stream's queue, fills each header, and drops the watchers when the client
/// goes away.
pub struct Outbound {
    server: Arc<EtcdServer>,
    rx: WatchReceiver,
}

impl Stream for Outbound {
    type Item = Result<Queued, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.rx.poll_next(cx).map(|q| {
            q.map(|mut q| {
                set_ids(&this.server, &mut q.header);
                Ok(q)
            })
        })
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.server.store.watchable.close_stream(self.rx.stream.id);
    }
}

impl tonic::server::StreamingService<WatchRequest> for WatchService {
    type Response = Queued;
    type ResponseStream = Outbound;
    type Future = std::future::Ready<Result<Response<Outbound>, Status>>;

    fn call(&mut self, req: Request<Streaming<WatchRequest>>) -> Self::Future {
        let creds = Credentials::of(&req);
        // As etcd: a client that half-closes its requests (grpcio's `Watch(iter([create]))`) keeps its
        // watchers until the call ends; the answers stream is dropped then, which closes them.
        std::future::ready(Ok(Response::new(self.watch_requests(creds, req.into_inner()))))
    }
}

/// `/etcdserverpb.Watch/Watch` on the client port.
#[derive(Clone)]
pub struct WatchGrpc(pub WatchService);

impl<B> tower::Service<http::Request<B>> for WatchGrpc
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let svc = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Queued, WatchRequest>::default());
            Ok(grpc.streaming(svc, req).await)
        })
    }
}

impl WatchService {
    /// Serves one watch stream: requests from `inbound`, responses on the returned stream (the gRPC stream
    /// and the gateway's JSON stream both come through here). The watchers stop when the response stream is
    /// dropped, not when the requests end: a request body ends long before the client stops reading, as
    /// etcd's `curl -X POST -d '{"create_request":..}'` and grpcio's `Watch(iter([create]))` show.
    pub(crate) fn watch_requests(
        &self,
        creds: Credentials,
        mut inbound: impl Stream<Item = Result<WatchRequest, Status>> + Send + Unpin + 'static,
    ) -> Outbound {
        let server = self.server.clone();
        let (ws, rx) = server.store.watchable.new_stream();
        let srv = server.clone();
        tokio::spawn(async move {
            while let Some(Ok(r)) = inbound.next().await {
                // A client that sends requests but does not read the answers: stop reading its requests until
                // it catches up (etcd's control channel blocks the same way), so a flood of creates never read
                // stays bounded by the stream's queue and HTTP/2 flow control.
                while ws.is_slow() && !ws.is_closed() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if ws.is_closed() {
                    break;
                }
                let store = &srv.store;
                match r.request_union {
                    Some(RequestUnion::CreateRequest(c)) => match permitted(&srv, &creds, &c) {
                        Ok(()) => store.watchable.watch(store, &ws, c),
                        Err(e) => {
                            let resp = WatchResponse {
                                watch_id: -1,
                                created: true,
                                canceled: true,
                                cancel_reason: e.message(),
                                ..Default::default()
                            };
                            ws.send(resp, store.rev());
                        }
                    },
                    Some(RequestUnion::CancelRequest(c)) => store.watchable.cancel(store, &ws, c.watch_id),
                    Some(RequestUnion::ProgressRequest(_)) => store.watchable.request_progress(&ws),
                    None => {}
                }
            }
        });
        Outbound { server, rx }
    }
}

/// etcd's isWatchPermitted: read permission over the watched range, checked on the range as asked (a
/// from-key `"\0"` end is the rest of the keyspace: GHSA-xg4h-6gfc-h4m8), the caller resolved anew.
fn permitted(server: &EtcdServer, creds: &Credentials, c: &WatchCreateRequest) -> Result<(), EtcdError> {
    if !server.auth.is_enabled() {
        return Ok(());
    }
    let who = creds.resolve(server)?;
    let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
    server.auth.check_op(who.as_ref(), key, &c.range_end, PermType::Read)
}

/// Catches unsynced watchers up and sends progress notifications, until `stop` turns true.
pub async fn sync_loop(
    server: Arc<EtcdServer>,
    progress_interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        let s = server.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let store = &s.store;
            if let Err(e) = store.watchable.sync(store) {
                eprintln!("pyetcd_fast: watch sync: {e}");
            }
            store.watchable.progress_notify(progress_interval);
        })
        .await;
    }
}
