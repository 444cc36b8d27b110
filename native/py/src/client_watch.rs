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
use crate::client_async::Queue;

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
    completions: Option<Arc<Queue>>,
    /// The wait `next_batch_async` started, aborted by `cancel`.
    pending: parking_lot::Mutex<Option<tokio::task::AbortHandle>>,
    /// Events of the last batch not yet taken one by one (`__next__`).
    buf: parking_lot::Mutex<std::collections::VecDeque<Py<Event>>>,
}

impl Watch {
    pub(crate) fn new(w: Watcher, completions: Option<Arc<Queue>>) -> Watch {
        let inner = Arc::new(tokio::sync::Mutex::new(w));
        let (pending, buf) = (parking_lot::Mutex::new(None), parking_lot::Mutex::new(Default::default()));
        Watch { inner, canceled: AtomicBool::new(false), completions, pending, buf }
    }
}

type Batch = Option<(i64, Vec<Py<Event>>)>;

/// The answer to a wait: a batch of events (empty: progress), or the error that ended the watch.
fn answer(py: Python<'_>, got: Result<WatchItem, WatchEnd>) -> PyResult<Batch> {
    match got {
        Ok(WatchItem::Events(rev, events)) => {
            let events = events.into_iter().map(|e| event(py, e)).collect::<PyResult<_>>()?;
            Ok(Some((rev, events)))
        }
        Ok(WatchItem::Progress(rev)) => Ok(Some((rev, Vec::new()))),
        Err(WatchEnd::Compacted(rev)) => {
            let err = Compacted::new_err(format!(
                "etcdserver: mvcc: required revision has been compacted (compact revision {rev})"
            ));
            err.value(py).setattr("compact_revision", rev)?;
            Err(err)
        }
        Err(WatchEnd::Canceled(reason)) if reason.contains("permission denied") => {
            Err(PermissionDenied::new_err(reason))
        }
        Err(WatchEnd::Canceled(reason)) => Err(EtcdError::new_err(reason)),
        Err(WatchEnd::Failed(status)) => Err(error(status)),
    }
}

const SLICE: Duration = Duration::from_millis(100);

#[pymethods]
impl Watch {
    /// The next answer: `(revision, events)` (events empty for a progress notification), or None once
    /// canceled. Raises `Compacted` (with `compact_revision`), `Timeout` after `timeout` seconds, or the
    /// server's refusal.
    #[pyo3(signature = (timeout=None))]
    fn next_batch(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Batch> {
        let held: Vec<Py<Event>> = self.buf.lock().drain(..).collect();
        if let Some(last) = held.last() {
            let rev = last.get().kv.get().mod_revision;
            return Ok(Some((rev, held)));
        }
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
                Ok(got) => return answer(py, got),
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next event, one by one (a batch is built once and handed out from a buffer); stops once canceled.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<Event>>> {
        loop {
            if let Some(e) = self.buf.lock().pop_front() {
                return Ok(Some(e));
            }
            match self.next_batch(py, None)? {
                None => return Ok(None),
                Some((_, events)) => self.buf.lock().extend(events),
            }
        }
    }

    /// `next_batch` for `AsyncClient`: returns at once; the answer arrives on the completion queue as
    /// call `token`. One wait at a time per watch.
    fn next_batch_async(&self, token: u64) -> PyResult<()> {
        let queue = self.completions.clone().ok_or_else(|| EtcdError::new_err("not an async client"))?;
        if self.canceled.load(Ordering::Acquire) {
            queue.push(token, Box::new(|py| Ok(py.None())));
            return Ok(());
        }
        let inner = self.inner.clone();
        let task = runtime().spawn(async move {
            let got = inner.lock().await.next().await;
            queue.push(token, Box::new(move |py| crate::client::obj(py, answer(py, got)?)));
        });
        *self.pending.lock() = Some(task.abort_handle());
        Ok(())
    }

    /// Ends the watch: `next_batch` returns None from now on.
    fn cancel(&self) {
        self.canceled.store(true, Ordering::Release);
        self.buf.lock().clear();
        if let Some(task) = self.pending.lock().take() {
            task.abort(); // the watcher's next() is cancel-safe
        }
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
