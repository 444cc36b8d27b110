//! Lease keep-alive in the background: one task per kept lease on the client's runtime (no thread), over a
//! LeaseKeepAlive stream that is opened again (on the next endpoint, through the client's failover) whenever
//! it breaks.
//!
//! Contract:
//!
//! 1. A keep-alive is sent every third of the lease's TTL (etcd's clientv3 pace), so two may be lost before
//!    the lease is at risk.
//! 2. A failed round (no leader during an election, a member gone) is retried every 200 ms until the lease's
//!    last known expiry; only then, or when the server answers TTL 0 (expired, revoked, unknown), is the lease
//!    *lost*: [`KeepAlive::lost`] turns true, [`KeepAlive::wait_lost`] returns and the `on_lost` hook runs once.
//! 3. Dropping the [`KeepAlive`] (or [`KeepAlive::stop`]) ends the task; the hook does not run then.
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::Status;

use super::conn::Stream;
use super::Client;
use crate::pb::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};

const PATH: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
/// The wait before a failed round is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// What a kept lease's owner can see.
pub struct State {
    pub id: i64,
    /// The TTL the server granted at the last keep-alive, in seconds.
    ttl: AtomicI64,
    lost: AtomicBool,
    lost_now: Notify,
}

impl State {
    pub fn ttl(&self) -> i64 {
        self.ttl.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

/// A lease kept alive until dropped.
pub struct KeepAlive {
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl KeepAlive {
    /// Keeps lease `id` (granted with `ttl` seconds) alive; `on_lost` runs once if it is lost. Must be called
    /// inside the client's runtime.
    pub fn start(client: Arc<Client>, id: i64, ttl: i64, on_lost: Option<Box<dyn FnOnce() + Send>>) -> KeepAlive {
        let state =
            Arc::new(State { id, ttl: AtomicI64::new(ttl), lost: AtomicBool::new(false), lost_now: Notify::new() });
        let task = tokio::spawn(run(client, state.clone(), on_lost));
        KeepAlive { state, task }
    }

    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Waits until the lease is lost (true) or `timeout` passes (false).
    pub async fn wait_lost(state: &State, timeout: Duration) -> bool {
        let notified = state.lost_now.notified();
        if state.lost() {
            return true;
        }
        tokio::time::timeout(timeout, notified).await.is_ok() || state.lost()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(client: Arc<Client>, state: Arc<State>, on_lost: Option<Box<dyn FnOnce() + Send>>) {
    let mut stream: Option<Stream> = None;
    let mut expires = Instant::now() + Duration::from_secs(state.ttl().max(1) as u64);
    loop {
        let round = tokio::time::timeout(client.cfg.timeout, once(&client, &mut stream, state.id)).await;
        match round {
            Ok(Ok(ttl)) if ttl > 0 => {
                state.ttl.store(ttl, Ordering::Relaxed);
                expires = Instant::now() + Duration::from_secs(ttl as u64);
                tokio::time::sleep(Duration::from_millis((ttl as u64 * 1000 / 3).max(100))).await;
                continue;
            }
            Ok(Ok(_)) => break, // the server no longer has it
            Ok(Err(_)) | Err(_) => {
                stream = None;
                if Instant::now() + RETRY >= expires {
                    break;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    state.ttl.store(0, Ordering::Relaxed);
    state.lost.store(true, Ordering::Release);
    state.lost_now.notify_waiters();
    if let Some(hook) = on_lost {
        hook();
    }
}

/// One keep-alive round on `stream` (opened if needed): the TTL the server answered.
async fn once(client: &Client, stream: &mut Option<Stream>, id: i64) -> Result<i64, Status> {
    if stream.is_none() {
        let conn = client.conn().await?;
        *stream = Some(conn.open_stream(PATH).await.map_err(Status::from)?);
    }
    let s = stream.as_mut().expect("opened above");
    s.send(&LeaseKeepAliveRequest { id }).map_err(Status::from)?;
    match s.recv::<LeaseKeepAliveResponse>().await {
        Ok(Some(r)) => Ok(r.ttl),
        Ok(None) => Err(Status::unavailable("the keep-alive stream ended")),
        Err(e) => {
            if e.transport {
                client.broken().await;
            }
            Err(e.status)
        }
    }
}

/// One keep-alive of lease `id`, with the client's deadline: the TTL the server answered (0: the lease is
/// gone).
pub async fn keep_alive_once(client: &Client, id: i64) -> Result<i64, Status> {
    let mut stream = None;
    match tokio::time::timeout(client.cfg.timeout, once(client, &mut stream, id)).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded("context deadline exceeded")),
    }
}
