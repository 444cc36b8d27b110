//! `_native.Micro*`: the micro-benchmark drivers of `etcd_core::micro`, for `bench/micro`. Conversions only;
//! the GIL is released around each timed operation.
use std::path::PathBuf;

use etcd_core::micro::{IndexBench, RangeBench, WalBench, WatchBench};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

/// WAL append + fdatasync of one batch per `save`.
#[pyclass(module = "pyetcd_fast._native", unsendable)]
pub struct MicroWal(WalBench);

#[pymethods]
impl MicroWal {
    #[new]
    #[pyo3(signature = (dir, entry_size, fsync = true))]
    fn new(dir: PathBuf, entry_size: usize, fsync: bool) -> PyResult<Self> {
        WalBench::new(&dir, entry_size, fsync).map(MicroWal).map_err(PyOSError::new_err)
    }

    fn save(&mut self, py: Python<'_>, batch: usize) -> PyResult<u64> {
        let w = &mut self.0;
        py.allow_threads(|| w.save(batch)).map_err(PyOSError::new_err)
    }
}

/// A revision index of `keys` keys: puts and ranges.
#[pyclass(module = "pyetcd_fast._native", unsendable)]
pub struct MicroIndex(IndexBench);

#[pymethods]
impl MicroIndex {
    #[new]
    fn new(keys: usize, key_size: usize) -> Self {
        MicroIndex(IndexBench::new(keys, key_size))
    }

    fn put(&mut self, count: usize) {
        self.0.put(count)
    }

    fn range(&self, start: usize, span: usize, limit: usize) -> usize {
        self.0.range(start, span, limit)
    }
}

/// A filled backend: serializable Ranges through the index and LMDB.
#[pyclass(module = "pyetcd_fast._native", unsendable)]
pub struct MicroRange(RangeBench);

#[pymethods]
impl MicroRange {
    #[new]
    fn new(py: Python<'_>, dir: PathBuf, keys: usize, value_size: usize) -> PyResult<Self> {
        py.allow_threads(|| RangeBench::new(&dir, keys, value_size)).map(MicroRange).map_err(PyOSError::new_err)
    }

    fn range(&self, start: usize, count: usize) -> PyResult<usize> {
        self.0.range(start, count).map_err(PyOSError::new_err)
    }
}

/// Synced watchers: matching and queueing a batch of events.
#[pyclass(module = "pyetcd_fast._native", unsendable)]
pub struct MicroWatch(WatchBench);

#[pymethods]
impl MicroWatch {
    #[new]
    #[pyo3(signature = (dir, watchers, streams, prefix = false))]
    fn new(dir: PathBuf, watchers: usize, streams: usize, prefix: bool) -> PyResult<Self> {
        WatchBench::new(&dir, watchers, streams, prefix).map(MicroWatch).map_err(PyOSError::new_err)
    }

    fn notify(&mut self, events: usize) -> usize {
        self.0.notify(events)
    }
}
