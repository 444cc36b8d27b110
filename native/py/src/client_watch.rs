//! Watch for the client binding: `Client.watch` makes a [`Watch`], whose `next_batch` waits (GIL released,
//! waking every 100 ms to let Python run its signal handlers, so Ctrl-C ends it at once) for the next
//! answer's events and returns them as `Event` objects built once each.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_core::client::watch::{WatchEnd, WatchItem, Watcher};
use etcd_core::pb::mvccpb;
use pyo3::prelude::*;

use crate::client::{error, kv, runtime, Compacted, EtcdError, KeyValue, PermissionDenied, Timeout};

/// One change to a key: `type` is "PUT" or "DELETE"; `kv` the key after it (for a delete: the key and the
/// revision of the delete); `prev_kv` the key before it, when the watch asked for it.
#[pyclass(module = "pyetcd_fast._native", frozen, get_all)]
pub struct Event {
    #[pyo3(name = "type")]
    kind: &'static str,
    kv: Py<KeyValue>,
    prev_kv: Option<Py<KeyValue>>,
}

#[pymethods]
impl Event {
    fn __repr__(&self, py: Python<'_>) -> String {
        let kv = self.kv.bind(py).repr().map_or_else(|_| "?".into(), |r| r.to_string());
        format!("Event(type={:?}, kv={kv})", self.kind)
    }
}

fn event(py: Python<'_>, e: mvccpb::Event) -> PyResult<Py<Event>> {
    let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 { "DELETE" } else { "PUT" };
    let kv_ = Py::new(py, kv(py, e.kv.unwrap_or_default()))?;
    let prev_kv = e.prev_kv.map(|p| Py::new(py, kv(py, p))).transpose()?;
    Py::new(py, Event { kind, kv: kv_, prev_kv })
}

/// A running watch (see `pyetcd_fast.client.Watch` for the iterator over it).
#[pyclass(module = "pyetcd_fast._native", frozen)]
pub struct Watch {
    inner: Arc<tokio::sync::Mutex<Watcher>>,
    canceled: AtomicBool,
}

impl Watch {
    pub fn new(w: Watcher) -> Watch {
        Watch { inner: Arc::new(tokio::sync::Mutex::new(w)), canceled: AtomicBool::new(false) }
    }
}

const SLICE: Duration = Duration::from_millis(100);

#[pymethods]
impl Watch {
    /// The next answer: `(revision, events)` (events empty for a progress notification), or None once
    /// canceled. Raises `Compacted` (with `compact_revision`), `Timeout` after `timeout` seconds, or the
    /// server's refusal.
    #[pyo3(signature = (timeout=None))]
    fn next_batch(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<(i64, Vec<Py<Event>>)>> {
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        loop {
            if self.canceled.load(Ordering::Acquire) {
                return Ok(None);
            }
            let inner = self.inner.clone();
            let got = py.allow_threads(|| {
                runtime().block_on(async move {
                    let mut w = inner.lock().await;
                    tokio::time::timeout(SLICE, w.next()).await
                })
            });
            match got {
                Err(_) => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Timeout::new_err("no event before the timeout"));
                    }
                }
                Ok(Ok(WatchItem::Events(rev, events))) => {
                    let events = events.into_iter().map(|e| event(py, e)).collect::<PyResult<_>>()?;
                    return Ok(Some((rev, events)));
                }
                Ok(Ok(WatchItem::Progress(rev))) => return Ok(Some((rev, Vec::new()))),
                Ok(Err(WatchEnd::Compacted(rev))) => {
                    let err = Compacted::new_err(format!(
                        "etcdserver: mvcc: required revision has been compacted (compact revision {rev})"
                    ));
                    err.value(py).setattr("compact_revision", rev)?;
                    return Err(err);
                }
                Ok(Err(WatchEnd::Canceled(reason))) if reason.contains("permission denied") => {
                    return Err(PermissionDenied::new_err(reason))
                }
                Ok(Err(WatchEnd::Canceled(reason))) => return Err(EtcdError::new_err(reason)),
                Ok(Err(WatchEnd::Failed(status))) => return Err(error(status)),
            }
        }
    }

    /// Ends the watch: `next_batch` returns None from now on.
    fn cancel(&self) {
        self.canceled.store(true, Ordering::Release);
    }

    /// Asks the server to report how far the watch is (answered as an empty batch).
    fn request_progress(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.allow_threads(|| runtime().block_on(async move { inner.lock().await.request_progress() }));
    }

    /// The revision the watch resumes from after a disconnect.
    #[getter]
    fn next_revision(&self, py: Python<'_>) -> i64 {
        let inner = self.inner.clone();
        py.allow_threads(|| runtime().block_on(async move { inner.lock().await.next_revision() }))
    }
}
