//! `pyetcd_fast._native`: the thin binding over etcd_core. It converts types, releases the GIL around every
//! call that may block (fsync, waiting for the edge to stop), and registers the module. No logic lives here.
mod client;
mod client_async;
mod client_lease;
mod client_ops;
mod client_txn;
mod client_watch;
mod micro;

use std::path::PathBuf;

/// The edge allocates per request (frames, headers, protobufs); glibc's malloc took ~14% of the server's
/// CPU under `put` with 1,000 clients. Rust allocations in this module use mimalloc; Python's are untouched.
/// It is built without transparent huge pages (Cargo.toml says why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

use etcd_core::etcdserver::membership::Member;
use etcd_core::etcdserver::{EtcdServer, ServerConfig};
use etcd_core::raftnode::logger::LOG_LEVEL;
use etcd_core::transport::{ClientTls, ServerTls, TlsInfo};
use etcd_core::v3rpc::Edge;
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// (id, name, peer URLs, client URLs, is learner).
type MemberRow = (u64, String, Vec<String>, Vec<String>, bool);

/// One member: its raft node, WAL, store, and (once `serve` is called) its client edge.
#[pyclass(module = "pyetcd_fast._native")]
struct Server {
    inner: Arc<EtcdServer>,
    edge: parking_lot::Mutex<Option<Edge>>,
}

fn get<'py, T: FromPyObject<'py>>(d: &Bound<'py, PyDict>, k: &str) -> PyResult<T> {
    d.get_item(k)?.ok_or_else(|| PyRuntimeError::new_err(format!("server config: missing {k}")))?.extract()
}

#[pymethods]
impl Server {
    /// Opens or creates the member's data (see `_native.pyi` for the config keys).
    #[new]
    fn new(py: Python<'_>, cfg: &Bound<'_, PyDict>) -> PyResult<Self> {
        let cfg = ServerConfig {
            name: get(cfg, "name")?,
            wal_dir: PathBuf::from(get::<String>(cfg, "wal_dir")?),
            backend_dir: PathBuf::from(get::<String>(cfg, "backend_dir")?),
            member_id: get(cfg, "member_id")?,
            cluster_id: get(cfg, "cluster_id")?,
            initial_members: get::<Vec<(u64, String, Vec<String>)>>(cfg, "initial_members")?
                .into_iter()
                .map(|(id, name, peer_urls)| Member { id, name, peer_urls, ..Default::default() })
                .collect(),
            new_cluster: get(cfg, "new_cluster")?,
            heartbeat_ms: get(cfg, "heartbeat_ms")?,
            election_ms: get(cfg, "election_ms")?,
            max_request_bytes: get(cfg, "max_request_bytes")?,
            max_txn_ops: get(cfg, "max_txn_ops")?,
            snapshot_count: get(cfg, "snapshot_count")?,
            snapshot_catchup_entries: get(cfg, "snapshot_catchup_entries")?,
            pre_vote: get(cfg, "pre_vote")?,
            wal_fsync: get(cfg, "wal_fsync")?,
            watch_progress_notify_ms: get(cfg, "watch_progress_notify_ms")?,
            quota_bytes: get(cfg, "quota_bytes")?,
            backend_batch_interval_ms: get(cfg, "backend_batch_interval_ms")?,
            backend_batch_limit: get(cfg, "backend_batch_limit")?,
            client_urls: get(cfg, "client_urls")?,
            enable_v2: get(cfg, "enable_v2")?,
            auth_token: get(cfg, "auth_token")?,
            auth_token_ttl_s: get(cfg, "auth_token_ttl")?,
            bcrypt_cost: get(cfg, "bcrypt_cost")?,
            max_concurrent_streams: get(cfg, "max_concurrent_streams")?,
        };
        let inner = py.allow_threads(|| EtcdServer::open(cfg)).map_err(PyOSError::new_err)?;
        Ok(Server { inner: Arc::new(inner), edge: parking_lot::Mutex::new(None) })
    }

    /// The eventfd that becomes readable when requests wait for the driver.
    fn notify_fd(&self) -> i32 {
        self.inner.notify_fd()
    }

    /// One batch of the Ready loop (propose → persist → apply → advance); returns entries applied.
    fn process_ready(&self, py: Python<'_>) -> PyResult<usize> {
        py.allow_threads(|| self.inner.process_ready()).map_err(PyOSError::new_err)
    }

    /// Proposes a compaction to `rev` without waiting for it (the auto-compactor).
    fn compact(&self, rev: i64) {
        self.inner.queue_compaction(rev)
    }

    /// One raft tick; raises OSError when the backend commit it may run fails (fatal to the member).
    fn tick(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.inner.tick()).map_err(PyOSError::new_err)
    }

    /// Fail-stop after a fatal error: fails every waiter and stops acknowledging, proposing, sending and
    /// writing, without the sync a clean `stop` does (the restart recovers from the WAL).
    fn fail(&self, py: Python<'_>) {
        py.allow_threads(|| {
            // The member first (nothing more acknowledged or committed), then the edge, which may take seconds.
            self.inner.fail();
            if let Some(mut e) = self.edge.lock().take() {
                e.shutdown();
            }
        })
    }

    /// Starts the peer transport on `listen` ((host:port, TLS) pairs) with the peer TLS flags `tls`; returns
    /// the bound addresses.
    #[pyo3(signature = (listen, tls=None))]
    fn serve_peers(
        &self,
        py: Python<'_>,
        listen: Vec<(String, bool)>,
        tls: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<String>> {
        let info = tls_info(tls)?;
        let server = self.inner.clone();
        py.allow_threads(|| {
            let secure =
                if listen.iter().any(|(_, t)| *t) { Some(Arc::new(ServerTls::new(&info, &[])?)) } else { None };
            server.serve_peers(&listen, secure, ClientTls::new(&info)?)
        })
        .map_err(PyOSError::new_err)
    }

    /// Starts handing leadership to the most caught-up voter (before a graceful stop); returns its id, or
    /// None when this member does not lead or has no one to hand over to.
    fn transfer_leadership(&self) -> Option<u64> {
        self.inner.begin_leadership_transfer()
    }

    /// Whether the member was removed from the cluster (the driver then stops it).
    #[getter]
    fn removed(&self) -> bool {
        self.inner.is_removed()
    }

    /// Whether this member's name and client URLs went through raft (it then serves clients).
    #[getter]
    fn published(&self) -> bool {
        self.inner.is_published()
    }

    /// The membership as applied: (id, name, peer URLs, client URLs, is learner) per member.
    fn members(&self) -> Vec<MemberRow> {
        self.inner
            .cluster
            .members()
            .into_iter()
            .map(|m| (m.id, m.name, m.peer_urls, m.client_urls, m.is_learner))
            .collect()
    }

    /// Starts the client edge on `listen` ((host:port, TLS) pairs) with the client TLS flags `tls`; returns
    /// the bound addresses.
    #[pyo3(signature = (listen, worker_threads, tls=None))]
    fn serve(
        &self,
        py: Python<'_>,
        listen: Vec<(String, bool)>,
        worker_threads: usize,
        tls: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<String>> {
        let info = tls_info(tls)?;
        let server = self.inner.clone();
        let edge = py
            .allow_threads(|| {
                let secure = if listen.iter().any(|(_, t)| *t) {
                    Some(Arc::new(ServerTls::new(&info, &["h2", "http/1.1"])?))
                } else {
                    None
                };
                Edge::start(server, &listen, secure, worker_threads)
            })
            .map_err(PyOSError::new_err)?;
        let addrs = edge.addrs().to_vec();
        *self.edge.lock() = Some(edge);
        Ok(addrs)
    }

    /// Stops the edge and fails pending requests; the member's files are synced.
    fn stop(&self, py: Python<'_>) {
        py.allow_threads(|| {
            if let Some(mut e) = self.edge.lock().take() {
                e.shutdown();
            }
            self.inner.stop();
        })
    }

    #[getter]
    fn member_id(&self) -> u64 {
        self.inner.member_id()
    }

    #[getter]
    fn cluster_id(&self) -> u64 {
        self.inner.cluster_id()
    }

    /// Plain numbers about the member, for logs and tests.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let s = &self.inner;
        d.set_item("member_id", s.member_id())?;
        d.set_item("cluster_id", s.cluster_id())?;
        d.set_item("term", s.term())?;
        d.set_item("leader", s.leader())?;
        d.set_item("applied_index", s.applied_index())?;
        d.set_item("committed_index", s.committed_index())?;
        d.set_item("revision", s.store.rev())?;
        d.set_item("compact_revision", s.store.compact_rev())?;
        d.set_item("db_size", s.store.backend().size())?;
        d.set_item("db_size_in_use", s.store.backend().size_in_use())?;
        d.set_item("is_learner", s.is_learner())?;
        Ok(d)
    }
}

/// Makes every native panic end the process at once with status 2, after a zap "panic" line (etcd's fail-stop).
/// The `pyetcd` command installs it; an embedded member does not.
#[pyfunction]
fn install_fail_stop() {
    etcd_core::failstop::install_panic_hook();
}

/// Arms failpoint `name` with `term` (see the failpoint module: `panic`, `exit`, `sleep(ms)`, `panic@N`) in
/// this process; False if the term does not parse. An empty term disarms it.
#[pyfunction]
fn set_failpoint(name: &str, term: &str) -> bool {
    if term.is_empty() {
        etcd_core::failpoint::disarm(name);
        return true;
    }
    etcd_core::failpoint::arm(name, term)
}

/// One side's TLS flags from a dict of `TlsInfo`'s field names (missing keys keep their defaults).
fn tls_info(d: Option<&Bound<'_, PyDict>>) -> PyResult<TlsInfo> {
    let mut info = TlsInfo::default();
    let Some(d) = d else {
        return Ok(info);
    };
    let text =
        |k: &str| -> PyResult<String> { Ok(d.get_item(k)?.map(|v| v.extract()).transpose()?.unwrap_or_default()) };
    let flag = |k: &str| -> PyResult<bool> { Ok(d.get_item(k)?.map(|v| v.extract()).transpose()?.unwrap_or(false)) };
    info.cert_file = text("cert_file")?;
    info.key_file = text("key_file")?;
    info.trusted_ca_file = text("trusted_ca_file")?;
    info.crl_file = text("crl_file")?;
    info.allowed_cn = text("allowed_cn")?;
    info.allowed_hostname = text("allowed_hostname")?;
    info.client_cert_auth = flag("client_cert_auth")?;
    info.insecure_skip_verify = flag("insecure_skip_verify")?;
    info.cipher_suites = d.get_item("cipher_suites")?.map(|v| v.extract()).transpose()?.unwrap_or_default();
    Ok(info)
}

/// `--auto-tls`: `cert.pem` and `key.pem` in `dir` for `hosts` (made once, then reused); returns their paths.
#[pyfunction]
fn self_cert(py: Python<'_>, dir: PathBuf, hosts: Vec<String>, validity_days: i64) -> PyResult<(String, String)> {
    py.allow_threads(|| etcd_core::transport::self_cert(&dir, &hosts, validity_days)).map_err(PyOSError::new_err)
}

/// Checks TLS flags as a listener would use them (files readable, key matching, cipher suites known);
/// raises OSError with etcd's message.
#[pyfunction]
#[pyo3(signature = (tls, server))]
fn check_tls(py: Python<'_>, tls: &Bound<'_, PyDict>, server: bool) -> PyResult<()> {
    let info = tls_info(Some(tls))?;
    py.allow_threads(|| if server { ServerTls::new(&info, &[]).map(|_| ()) } else { ClientTls::new(&info).map(|_| ()) })
        .map_err(PyOSError::new_err)
}

/// 0 debug, 1 info, 2 warn, 3 error: the level below which native log lines are dropped.
#[pyfunction]
fn set_log_level(level: u8) {
    LOG_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Server>()?;
    client::register(m)?;
    m.add_class::<micro::MicroWal>()?;
    m.add_class::<micro::MicroIndex>()?;
    m.add_class::<micro::MicroRange>()?;
    m.add_class::<micro::MicroWatch>()?;
    m.add_function(wrap_pyfunction!(set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(install_fail_stop, m)?)?;
    m.add_function(wrap_pyfunction!(set_failpoint, m)?)?;
    m.add_function(wrap_pyfunction!(self_cert, m)?)?;
    m.add_function(wrap_pyfunction!(check_tls, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
