//! The binding of the native client ([`etcd_core::client`]): calls take bytes and plain numbers, run on the
//! client runtime with the GIL released, and answer with small frozen objects built once per response
//! (`KeyValue`, `ResponseHeader`). etcd's errors are raised as the exception classes below, which
//! `pyetcd_fast.errors` re-exports.
use std::sync::Arc;
use std::time::Duration;

use etcd_core::client::{Client as Core, ClientConfig};
use etcd_core::pb::etcdserverpb as pb;
use etcd_core::pb::mvccpb;
use etcd_core::transport::TlsInfo;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tonic::{Code, Status};

use crate::client_async::{Completions, Queue};

create_exception!(_native, EtcdError, PyException, "An error etcd answered, or the client could not reach it.");
create_exception!(_native, ConnectionFailed, EtcdError, "No endpoint could be reached.");
create_exception!(_native, Timeout, EtcdError, "The call's deadline passed.");
create_exception!(_native, Unavailable, EtcdError, "The server could not serve the call now; it may be retried.");
create_exception!(_native, NoLeader, Unavailable, "The cluster has no leader.");
create_exception!(_native, Compacted, EtcdError, "The revision asked for was compacted.");
create_exception!(_native, FutureRevision, EtcdError, "The revision asked for is past the current one.");
create_exception!(_native, LeaseNotFound, EtcdError, "The lease does not exist (it expired or was revoked).");
create_exception!(_native, PermissionDenied, EtcdError, "The user may not do this.");
create_exception!(_native, AuthFailed, EtcdError, "The user name or password is wrong.");
create_exception!(_native, InvalidAuthToken, EtcdError, "The auth token is invalid or expired.");
create_exception!(_native, RequestTooLarge, EtcdError, "The request is over the server's size limit.");

/// The exception for a status etcd (or the transport) answered.
pub(crate) fn error(s: Status) -> PyErr {
    let msg = s.message().to_string();
    let m = s.message();
    match s.code() {
        Code::DeadlineExceeded => Timeout::new_err(msg),
        Code::Unavailable if m.contains("no leader") => NoLeader::new_err(msg),
        Code::Unavailable if m.starts_with("no endpoint answered") => ConnectionFailed::new_err(msg),
        Code::Unavailable => Unavailable::new_err(msg),
        Code::OutOfRange if m.contains("compacted") => Compacted::new_err(msg),
        Code::OutOfRange if m.contains("future revision") => FutureRevision::new_err(msg),
        Code::NotFound if m.contains("lease not found") => LeaseNotFound::new_err(msg),
        Code::PermissionDenied => PermissionDenied::new_err(msg),
        Code::InvalidArgument if m.contains("authentication failed") => AuthFailed::new_err(msg),
        Code::Unauthenticated => InvalidAuthToken::new_err(msg),
        Code::InvalidArgument if m.contains("too large") => RequestTooLarge::new_err(msg),
        _ => EtcdError::new_err(msg),
    }
}

/// The runtime every client's connections and calls run on: one worker, started on first use, and again
/// in a forked child (whose copy of the parent's runtime has no threads; it is leaked, never dropped).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: parking_lot::Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = parking_lot::Mutex::new(None);
    let pid = std::process::id();
    let mut rt = RT.lock();
    match *rt {
        Some((p, r)) if p == pid => r,
        _ => {
            let r: &'static _ = Box::leak(Box::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("pyetcd-client")
                    .enable_all()
                    .build()
                    .expect("the client runtime"),
            ));
            *rt = Some((pid, r));
            r
        }
    }
}

/// A key's state (mvccpb.KeyValue).
#[pyclass(module = "pyetcd_fast._native", frozen, get_all)]
pub struct KeyValue {
    pub(crate) key: Py<PyBytes>,
    pub(crate) value: Py<PyBytes>,
    pub(crate) create_revision: i64,
    pub(crate) mod_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
}

#[pymethods]
impl KeyValue {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "KeyValue(key={}, value={}, create_revision={}, mod_revision={}, version={}, lease={})",
            self.key.bind(py).repr().map_or_else(|_| "?".into(), |r| r.to_string()),
            self.value.bind(py).repr().map_or_else(|_| "?".into(), |r| r.to_string()),
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease
        )
    }
}

pub(crate) fn kv(py: Python<'_>, k: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: PyBytes::new(py, &k.key).unbind(),
        value: PyBytes::new(py, &k.value).unbind(),
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

pub(crate) fn kvs(py: Python<'_>, v: Vec<mvccpb::KeyValue>) -> PyResult<Vec<Py<KeyValue>>> {
    v.into_iter().map(|k| Py::new(py, kv(py, k))).collect()
}

/// The header of every answer: the member that answered and the store revision when it did.
#[pyclass(module = "pyetcd_fast._native", frozen, get_all)]
#[derive(Clone)]
pub struct ResponseHeader {
    cluster_id: u64,
    member_id: u64,
    revision: i64,
    raft_term: u64,
}

#[pymethods]
impl ResponseHeader {
    fn __repr__(&self) -> String {
        format!(
            "ResponseHeader(cluster_id={:#x}, member_id={:#x}, revision={}, raft_term={})",
            self.cluster_id, self.member_id, self.revision, self.raft_term
        )
    }
}

pub(crate) fn header(h: Option<pb::ResponseHeader>) -> ResponseHeader {
    let h = h.unwrap_or_default();
    ResponseHeader { cluster_id: h.cluster_id, member_id: h.member_id, revision: h.revision, raft_term: h.raft_term }
}

/// A connection to an etcd cluster (see `pyetcd_fast.Client` for the Python API over it). Every call blocks
/// with the GIL released, unless it is given a `token`: then it returns None at once and its answer is
/// queued on the client's `Completions` (`pyetcd_fast.AsyncClient`).
#[pyclass(module = "pyetcd_fast._native", frozen)]
pub struct Client {
    pub(crate) core: Arc<Core>,
    pub(crate) completions: Option<Arc<Queue>>,
}

pub(crate) fn secs(s: Option<f64>) -> Option<Duration> {
    s.filter(|s| s.is_finite() && *s > 0.0).map(Duration::from_secs_f64)
}

/// `t` as a Python object.
pub(crate) fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, t: T) -> PyResult<PyObject> {
    pyo3::IntoPyObjectExt::into_py_any(t, py)
}

impl Client {
    /// Runs `fut` and builds its answer with `decode`: now, blocking with the GIL released, or (with a
    /// `token`) when it ends, through the completion queue.
    pub(crate) fn finish<R, F>(
        &self,
        py: Python<'_>,
        fut: impl std::future::Future<Output = Result<R, Status>> + Send + 'static,
        token: Option<u64>,
        decode: F,
    ) -> PyResult<PyObject>
    where
        R: Send + 'static,
        F: for<'py> FnOnce(Python<'py>, R) -> PyResult<PyObject> + Send + 'static,
    {
        match token {
            None => {
                let r = py.allow_threads(|| runtime().block_on(fut)).map_err(error)?;
                decode(py, r)
            }
            Some(token) => {
                let queue = self.completions.clone().ok_or_else(|| EtcdError::new_err("not an async client"))?;
                runtime().spawn(async move {
                    let r = fut.await;
                    queue.push(token, Box::new(move |py| decode(py, r.map_err(error)?)));
                });
                Ok(py.None())
            }
        }
    }

    /// One unary call of `path`, answered through [`Client::finish`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<Q, R, F>(
        &self,
        py: Python<'_>,
        path: &'static str,
        req: Q,
        read: bool,
        timeout: Option<f64>,
        token: Option<u64>,
        decode: F,
    ) -> PyResult<PyObject>
    where
        Q: prost::Message + Send + 'static,
        R: prost::Message + Default + Send + 'static,
        F: for<'py> FnOnce(Python<'py>, R) -> PyResult<PyObject> + Send + 'static,
    {
        let core = self.core.clone();
        let fut = async move { core.call::<Q, R>(path, &req, read, secs(timeout)).await };
        self.finish(py, fut, token, decode)
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (endpoints, timeout, dial_timeout, ca_file=None, cert_file=None, key_file=None, user=None, completions=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoints: Vec<String>,
        timeout: f64,
        dial_timeout: f64,
        ca_file: Option<String>,
        cert_file: Option<String>,
        key_file: Option<String>,
        user: Option<(String, String)>,
        completions: Option<Bound<'_, Completions>>,
    ) -> PyResult<Self> {
        let tls = (ca_file.is_some() || cert_file.is_some()).then(|| TlsInfo {
            trusted_ca_file: ca_file.unwrap_or_default(),
            cert_file: cert_file.unwrap_or_default(),
            key_file: key_file.unwrap_or_default(),
            ..Default::default()
        });
        let cfg = ClientConfig {
            endpoints,
            tls,
            timeout: secs(Some(timeout)).unwrap_or(Duration::from_secs(5)),
            dial_timeout: secs(Some(dial_timeout)).unwrap_or(Duration::from_secs(2)),
            user,
        };
        let core = Core::new(cfg).map_err(EtcdError::new_err)?;
        Ok(Client { core: Arc::new(core), completions: completions.map(|c| c.get().queue.clone()) })
    }

    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.core.endpoints().to_vec()
    }

    /// Range: (header, kvs, more, count).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (key, range_end, limit, revision, sort_order, sort_target, serializable, keys_only, count_only, timeout=None, token=None))]
    fn range(
        &self,
        py: Python<'_>,
        key: Vec<u8>,
        range_end: Vec<u8>,
        limit: i64,
        revision: i64,
        sort_order: i32,
        sort_target: i32,
        serializable: bool,
        keys_only: bool,
        count_only: bool,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let t = (0, key, range_end, limit, revision, sort_order, sort_target, serializable, keys_only, count_only);
        let req = crate::client_txn::range_request(t);
        self.run(py, "/etcdserverpb.KV/Range", req, true, timeout, token, |py, r: pb::RangeResponse| {
            obj(py, (header(r.header), kvs(py, r.kvs)?, r.more, r.count))
        })
    }

    /// Put: (header, prev_kv or None).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (key, value, lease, prev_kv, ignore_value, ignore_lease, timeout=None, token=None))]
    fn put(
        &self,
        py: Python<'_>,
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
        prev_kv: bool,
        ignore_value: bool,
        ignore_lease: bool,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::PutRequest { key, value, lease, prev_kv, ignore_value, ignore_lease };
        self.run(py, "/etcdserverpb.KV/Put", req, false, timeout, token, |py, r: pb::PutResponse| {
            let prev = r.prev_kv.map(|k| Py::new(py, kv(py, k))).transpose()?;
            obj(py, (header(r.header), prev))
        })
    }

    /// DeleteRange: (header, deleted, prev_kvs).
    #[pyo3(signature = (key, range_end, prev_kv, timeout=None, token=None))]
    fn delete_range(
        &self,
        py: Python<'_>,
        key: Vec<u8>,
        range_end: Vec<u8>,
        prev_kv: bool,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::DeleteRangeRequest { key, range_end, prev_kv };
        self.run(py, "/etcdserverpb.KV/DeleteRange", req, false, timeout, token, |py, r: pb::DeleteRangeResponse| {
            obj(py, (header(r.header), r.deleted, kvs(py, r.prev_kvs)?))
        })
    }

    /// Txn: (header, succeeded, answers); compares, ops and answers as `client_txn` spells them.
    #[pyo3(signature = (compares, success, failure, timeout=None, token=None))]
    fn txn<'py>(
        &self,
        py: Python<'py>,
        compares: Vec<crate::client_txn::CompareTuple>,
        success: Bound<'py, PyAny>,
        failure: Bound<'py, PyAny>,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = crate::client_txn::request(compares, &success, &failure)?;
        self.run(py, "/etcdserverpb.KV/Txn", req, false, timeout, token, |py, r: pb::TxnResponse| {
            Ok(crate::client_txn::response(py, r)?.into_any().unbind())
        })
    }

    /// A watch of `[key, range_end)` from `start_revision` (0: from now).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (key, range_end, start_revision, prev_kv, filters, progress_notify))]
    fn watch(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        start_revision: i64,
        prev_kv: bool,
        filters: Vec<i32>,
        progress_notify: bool,
    ) -> crate::client_watch::Watch {
        let create = pb::WatchCreateRequest {
            key,
            range_end,
            start_revision,
            prev_kv,
            filters,
            progress_notify,
            ..Default::default()
        };
        let w = etcd_core::client::watch::Watcher::new(self.core.clone(), create);
        crate::client_watch::Watch::new(w, self.completions.clone())
    }

    /// Compact: the header.
    #[pyo3(signature = (revision, physical, timeout=None, token=None))]
    fn compact(
        &self,
        py: Python<'_>,
        revision: i64,
        physical: bool,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::CompactionRequest { revision, physical };
        self.run(py, "/etcdserverpb.KV/Compact", req, false, timeout, token, |py, r: pb::CompactionResponse| {
            obj(py, header(r.header))
        })
    }

    /// LeaseGrant: (header, id, ttl).
    #[pyo3(signature = (ttl, id, timeout=None, token=None))]
    fn lease_grant(
        &self,
        py: Python<'_>,
        ttl: i64,
        id: i64,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::LeaseGrantRequest { ttl, id };
        self.run(py, "/etcdserverpb.Lease/LeaseGrant", req, false, timeout, token, |py, r: pb::LeaseGrantResponse| {
            if !r.error.is_empty() {
                return Err(EtcdError::new_err(r.error));
            }
            obj(py, (header(r.header), r.id, r.ttl))
        })
    }

    /// LeaseRevoke: the header.
    #[pyo3(signature = (id, timeout=None, token=None))]
    fn lease_revoke(&self, py: Python<'_>, id: i64, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::LeaseRevokeRequest { id };
        self.run(py, "/etcdserverpb.Lease/LeaseRevoke", req, false, timeout, token, |py, r: pb::LeaseRevokeResponse| {
            obj(py, header(r.header))
        })
    }

    /// One keep-alive of lease `id`: the TTL the server answered (0: the lease is gone).
    #[pyo3(signature = (id, token=None))]
    fn lease_keep_alive_once(&self, py: Python<'_>, id: i64, token: Option<u64>) -> PyResult<PyObject> {
        let core = self.core.clone();
        let fut = async move { etcd_core::client::lease::keep_alive_once(&core, id).await };
        #[allow(clippy::redundant_closure)] // a closure is generic over the GIL lifetime, the fn item is not
        self.finish(py, fut, token, |py, ttl: i64| obj(py, ttl))
    }

    /// Keeps lease `id` (granted with `ttl` seconds) alive in the background until the answer is dropped or
    /// stopped; `on_lost` is called (with no argument, on a runtime thread) if the lease is lost.
    #[pyo3(signature = (id, ttl, on_lost=None))]
    fn lease_keep_alive(&self, id: i64, ttl: i64, on_lost: Option<PyObject>) -> crate::client_lease::KeepAlive {
        crate::client_lease::KeepAlive::start(self.core.clone(), id, ttl, on_lost)
    }

    /// LeaseTimeToLive: (header, id, ttl, granted_ttl, keys).
    #[pyo3(signature = (id, keys, timeout=None, token=None))]
    fn lease_time_to_live(
        &self,
        py: Python<'_>,
        id: i64,
        keys: bool,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::LeaseTimeToLiveRequest { id, keys };
        let path = "/etcdserverpb.Lease/LeaseTimeToLive";
        self.run(py, path, req, true, timeout, token, |py, r: pb::LeaseTimeToLiveResponse| {
            let keys: Vec<_> = r.keys.iter().map(|k| PyBytes::new(py, k).unbind()).collect();
            obj(py, (header(r.header), r.id, r.ttl, r.granted_ttl, keys))
        })
    }

    /// LeaseLeases: (header, ids).
    #[pyo3(signature = (timeout=None, token=None))]
    fn lease_leases(&self, py: Python<'_>, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::LeaseLeasesRequest {};
        self.run(py, "/etcdserverpb.Lease/LeaseLeases", req, true, timeout, token, |py, r: pb::LeaseLeasesResponse| {
            obj(py, (header(r.header), r.leases.into_iter().map(|l| l.id).collect::<Vec<_>>()))
        })
    }

    /// Status of the member the client is connected to: (header, version, db_size, leader, raft_index,
    /// raft_term, raft_applied_index, errors, db_size_in_use, is_learner).
    #[pyo3(signature = (timeout=None, token=None))]
    fn status(&self, py: Python<'_>, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::StatusRequest {};
        self.run(py, "/etcdserverpb.Maintenance/Status", req, true, timeout, token, |py, r: pb::StatusResponse| {
            let h = header(r.header);
            let (index, term, applied) = (r.raft_index, r.raft_term, r.raft_applied_index);
            obj(py, (h, r.version, r.db_size, r.leader, index, term, applied, r.errors, r.db_size_in_use, r.is_learner))
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Client>()?;
    m.add_class::<KeyValue>()?;
    m.add_class::<ResponseHeader>()?;
    m.add_class::<crate::client_watch::Watch>()?;
    m.add_class::<crate::client_watch::Event>()?;
    m.add_class::<crate::client_lease::KeepAlive>()?;
    m.add_class::<Completions>()?;
    for (name, ty) in [
        ("EtcdError", py.get_type::<EtcdError>()),
        ("ConnectionFailed", py.get_type::<ConnectionFailed>()),
        ("Timeout", py.get_type::<Timeout>()),
        ("Unavailable", py.get_type::<Unavailable>()),
        ("NoLeader", py.get_type::<NoLeader>()),
        ("Compacted", py.get_type::<Compacted>()),
        ("FutureRevision", py.get_type::<FutureRevision>()),
        ("LeaseNotFound", py.get_type::<LeaseNotFound>()),
        ("PermissionDenied", py.get_type::<PermissionDenied>()),
        ("AuthFailed", py.get_type::<AuthFailed>()),
        ("InvalidAuthToken", py.get_type::<InvalidAuthToken>()),
        ("RequestTooLarge", py.get_type::<RequestTooLarge>()),
    ] {
        m.add(name, ty)?;
    }
    Ok(())
}
