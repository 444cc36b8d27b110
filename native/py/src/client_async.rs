//! Completions for `pyetcd_fast.AsyncClient`: a call made with a `token` runs on the client runtime and, when
//! it ends, queues a closure that builds its answer; the queue's eventfd becomes readable when the first
//! completion of a batch arrives, so the event loop wakes once per batch and `drain` builds every answer of
//! the batch with the GIL taken once.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use pyo3::prelude::*;

/// What a finished call leaves: a closure that builds its answer (or raises its error) under the GIL.
pub(crate) type Done = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<PyObject> + Send>;

pub(crate) struct Queue {
    done: parking_lot::Mutex<Vec<(u64, Done)>>,
    fd: OwnedFd,
}

impl Queue {
    /// Queues the completion of call `token`; the first of a batch makes the eventfd readable.
    pub(crate) fn push(&self, token: u64, done: Done) {
        let first = {
            let mut q = self.done.lock();
            q.push((token, done));
            q.len() == 1
        };
        if first {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd this queue owns.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
}

/// The completion queue of one `AsyncClient` (see the module docstring).
#[pyclass(module = "pyetcd_fast._native", frozen)]
pub struct Completions {
    pub(crate) queue: Arc<Queue>,
}

#[pymethods]
impl Completions {
    #[new]
    fn new() -> PyResult<Self> {
        // SAFETY: eventfd returns a new descriptor (or -1), owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Completions { queue: Arc::new(Queue { done: parking_lot::Mutex::new(Vec::new()), fd }) })
    }

    /// The descriptor the event loop watches for reading.
    fn fileno(&self) -> i32 {
        self.queue.fd.as_raw_fd()
    }

    /// Every completion queued so far, as `(token, ok, answer or exception)`.
    fn drain(&self, py: Python<'_>) -> Vec<(u64, bool, PyObject)> {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from the non-blocking eventfd (EAGAIN when nothing is there).
        unsafe { libc::read(self.queue.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        let done = std::mem::take(&mut *self.queue.done.lock());
        done.into_iter()
            .map(|(token, f)| match f(py) {
                Ok(answer) => (token, true, answer),
                Err(e) => (token, false, e.into_value(py).into_any()),
            })
            .collect()
    }
}
