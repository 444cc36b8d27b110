//! etcdserverpb.Watch: one bidirectional stream carries many watchers. Requests are handled as they arrive;
//! responses come from the store's fan-out through the stream's queue, with the header's ids filled here.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::header::fill_ids;
use crate::etcdserver::EtcdServer;
use crate::mvcc::watcher::WatchStream;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{WatchRequest, WatchResponse};

pub struct WatchService {
    pub server: Arc<EtcdServer>,
}

/// The outbound half: drains the stream's queue, fills each header, and drops the watchers when the client
/// goes away.
pub struct Outbound {
    server: Arc<EtcdServer>,
    stream: Arc<WatchStream>,
    rx: UnboundedReceiver<WatchResponse>,
}

impl Stream for Outbound {
    type Item = Result<WatchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(mut resp)) => {
                self.stream.taken();
                fill_ids(&self.server, &mut resp.header);
                Poll::Ready(Some(Ok(resp)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.server.store.watchable.close_stream(self.stream.id);
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Outbound;

    async fn watch(&self, req: Request<Streaming<WatchRequest>>) -> Result<Response<Outbound>, Status> {
        Ok(Response::new(self.watch_requests(req.into_inner(), true)))
    }
}

impl WatchService {
    /// Serves one watch stream: requests from `inbound`, responses on the returned stream (the gRPC stream
    /// and the gateway's JSON stream both come through here). With `stop_on_close` the watchers stop when
    /// the requests end; otherwise only when the response stream is dropped (the gateway: a request body
    /// ends long before the client stops reading, as etcd's `curl -X POST -d '{"create_request":..}'` shows).
    pub(crate) fn watch_requests(
        &self,
        mut inbound: impl Stream<Item = Result<WatchRequest, Status>> + Send + Unpin + 'static,
        stop_on_close: bool,
    ) -> Outbound {
        let server = self.server.clone();
        let (stream, rx) = server.store.watchable.new_stream();
        let (srv, ws) = (server.clone(), stream.clone());
        tokio::spawn(async move {
            while let Some(Ok(r)) = inbound.next().await {
                let store = &srv.store;
                match r.request_union {
                    Some(RequestUnion::CreateRequest(c)) => store.watchable.watch(store, &ws, c),
                    Some(RequestUnion::CancelRequest(c)) => store.watchable.cancel(store, &ws, c.watch_id),
                    Some(RequestUnion::ProgressRequest(_)) => store.watchable.request_progress(store, &ws),
                    None => {}
                }
            }
            // The client closed its side: its watchers stop here even if the response side lingers.
            if stop_on_close {
                srv.store.watchable.close_stream(ws.id);
            }
        });
        Outbound { server, stream, rx }
    }
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
            store.watchable.progress_notify(store, progress_interval);
        })
        .await;
    }
}
