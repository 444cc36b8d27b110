//! A watch that survives its connection: one Watch stream with one watcher, re-created after a disconnect
//! (on the next endpoint, if the member is gone) from the revision after the last one delivered, so no event
//! is lost or repeated.
//!
//! The next revision to ask for is known at all times: the start revision the caller gave, else the header
//! revision of the "created" answer + 1; then the last event's mod revision + 1, or a progress
//! notification's header revision + 1. A compacted start revision ends the watch with its compact revision;
//! a server-side cancel (permission denied, say) ends it with the reason.
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use super::conn::Stream;
use super::Client;
use crate::pb::etcdserverpb::{
    watch_request::RequestUnion, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use crate::pb::mvccpb::Event;

const PATH: &str = "/etcdserverpb.Watch/Watch";
/// Waits between attempts to re-create a broken watch (doubling up to the last).
const BACKOFF: [u64; 5] = [0, 50, 100, 200, 500];

/// What a watch yields.
#[derive(Debug)]
pub enum WatchItem {
    /// The events of one answer (whole revisions), and its header revision.
    Events(i64, Vec<Event>),
    /// A progress notification: every event up to this revision was delivered.
    Progress(i64),
}

/// Why a watch ended.
#[derive(Debug)]
pub enum WatchEnd {
    /// The revision asked for is compacted; this is the compact revision.
    Compacted(i64),
    /// The server canceled the watcher (the reason it gave).
    Canceled(String),
    /// The watch could not be created (an error etcd answered).
    Failed(Status),
}

pub struct Watcher {
    client: Arc<Client>,
    create: WatchCreateRequest,
    stream: Option<Stream>,
    /// Whether the current stream's watcher was confirmed created.
    created: bool,
    attempts: usize,
    /// A progress request waiting for the watcher to be created.
    progress_wanted: bool,
}

impl Watcher {
    /// A watch of `create` (its `start_revision` 0: from now).
    pub fn new(client: Arc<Client>, create: WatchCreateRequest) -> Watcher {
        Watcher { client, create, stream: None, created: false, attempts: 0, progress_wanted: false }
    }

    /// The revision the watch resumes from (0: from whatever is current when it is created).
    pub fn next_revision(&self) -> i64 {
        self.create.start_revision
    }

    /// Asks the server for a progress notification (answered as [`WatchItem::Progress`]).
    pub fn request_progress(&mut self) {
        self.progress_wanted = true;
        self.send_progress_request();
    }

    fn send_progress_request(&mut self) {
        if let Some(s) = self.stream.as_mut().filter(|_| self.created && self.progress_wanted) {
            let req = WatchRequest { request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})) };
            if s.send(&req).is_ok() {
                self.progress_wanted = false;
            }
        }
    }

    async fn open(&mut self) -> Result<(), Status> {
        let wait = BACKOFF[self.attempts.min(BACKOFF.len() - 1)];
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        self.attempts += 1;
        let conn = self.client.conn().await?;
        let mut s = conn.open_stream(PATH).await.map_err(Status::from)?;
        let req = WatchRequest { request_union: Some(RequestUnion::CreateRequest(self.create.clone())) };
        s.send(&req).map_err(Status::from)?;
        self.stream = Some(s);
        self.created = false;
        Ok(())
    }

    /// The next batch of events (or progress). Cancel-safe: dropping the future loses nothing, the next call
    /// goes on where it stopped.
    pub async fn next(&mut self) -> Result<WatchItem, WatchEnd> {
        loop {
            if self.stream.is_none() {
                if let Err(e) = self.open().await {
                    if self.attempts > 50 {
                        return Err(WatchEnd::Failed(e));
                    }
                    continue;
                }
            }
            let s = self.stream.as_mut().expect("opened above");
            let resp: WatchResponse = match s.recv().await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.stream = None; // the server ended the stream: watch again
                    continue;
                }
                Err(e) if e.transport || e.status.code() == tonic::Code::Unavailable => {
                    self.stream = None;
                    if e.transport {
                        self.client.broken().await;
                    }
                    continue;
                }
                Err(e) => return Err(WatchEnd::Failed(e.status)),
            };
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            if resp.compact_revision > 0 {
                self.stream = None;
                return Err(WatchEnd::Compacted(resp.compact_revision));
            }
            if resp.canceled {
                self.stream = None;
                return Err(WatchEnd::Canceled(resp.cancel_reason));
            }
            if resp.created {
                self.created = true;
                self.attempts = 0;
                if self.create.start_revision == 0 {
                    self.create.start_revision = rev + 1;
                }
                self.send_progress_request();
                continue;
            }
            if let Some(last) = resp.events.last().and_then(|e| e.kv.as_ref()) {
                self.create.start_revision = self.create.start_revision.max(last.mod_revision + 1);
                return Ok(WatchItem::Events(rev, resp.events));
            }
            self.create.start_revision = self.create.start_revision.max(rev + 1);
            return Ok(WatchItem::Progress(rev));
        }
    }
}
