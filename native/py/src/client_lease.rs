//! A lease kept alive in the background (`Client.lease_keep_alive`): the task lives on the client runtime
//! ([`etcd_core::client::lease`]); this object only reads its state and ends it.
use std::sync::Arc;
use std::time::Duration;

use etcd_core::client::lease::KeepAlive as Core;
use etcd_core::client::Client;
use pyo3::prelude::*;

use crate::client::{runtime, secs};

/// A lease being kept alive until `stop()` (or until this object is dropped).
#[pyclass(module = "pyetcd_fast._native", frozen)]
pub struct KeepAlive {
    inner: parking_lot::Mutex<Option<Core>>,
    state: Arc<etcd_core::client::lease::State>,
}

impl KeepAlive {
    pub fn start(client: Arc<Client>, id: i64, ttl: i64, on_lost: Option<PyObject>) -> KeepAlive {
        let hook = on_lost.map(|f| -> Box<dyn FnOnce() + Send> {
            Box::new(move || {
                // Off the runtime's workers: the callback may take as long as it likes.
                std::thread::spawn(move || {
                    Python::with_gil(|py| {
                        if let Err(e) = f.call0(py) {
                            e.write_unraisable(py, None);
                        }
                    })
                });
            })
        });
        let core = {
            let _inside = runtime().enter(); // Core::start spawns its task on the client runtime
            Core::start(client, id, ttl, hook)
        };
        let state = core.state().clone();
        KeepAlive { inner: parking_lot::Mutex::new(Some(core)), state }
    }
}

#[pymethods]
impl KeepAlive {
    #[getter]
    fn id(&self) -> i64 {
        self.state.id
    }

    /// The TTL granted at the last keep-alive (0 once lost).
    #[getter]
    fn ttl(&self) -> i64 {
        self.state.ttl()
    }

    /// Whether the lease was lost (expired, revoked, or unreachable until its expiry).
    #[getter]
    fn lost(&self) -> bool {
        self.state.lost()
    }

    /// Waits, with the GIL released, until the lease is lost (True) or `timeout` seconds pass (False).
    #[pyo3(signature = (timeout=None))]
    fn wait_lost(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = secs(timeout).map(|t| std::time::Instant::now() + t);
        loop {
            let state = self.state.clone();
            let slice = Duration::from_millis(100);
            if py.allow_threads(|| runtime().block_on(async move { Core::wait_lost(&state, slice).await })) {
                return Ok(true);
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// Stops keeping the lease alive (it then expires after its TTL unless revoked).
    fn stop(&self) {
        if let Some(core) = self.inner.lock().take() {
            core.stop();
        }
    }
}
