//! Response headers and errors as etcd's v3rpc fills them.
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::ResponseHeader;

/// etcd's header.fill: ids and term always; the store revision when the applier left it 0.
pub fn fill(server: &EtcdServer, h: &mut Option<ResponseHeader>) {
    fill_ids(server, h);
    let h = h.as_mut().expect("filled");
    if h.revision == 0 {
        h.revision = server.store.rev();
    }
}

/// A new header with the ids, term and current revision.
pub fn filled(server: &EtcdServer) -> Option<ResponseHeader> {
    let mut h = None;
    fill(server, &mut h);
    h
}

/// The ids and term only: a watch response keeps the revision its sender chose, even 0 (etcd sends the
/// compacted-watch cancellation with no revision).
pub fn fill_ids(server: &EtcdServer, h: &mut Option<ResponseHeader>) {
    set_ids(server, h.get_or_insert_with(ResponseHeader::default));
}

pub fn set_ids(server: &EtcdServer, h: &mut ResponseHeader) {
    h.cluster_id = server.cluster_id();
    h.member_id = server.member_id();
    h.raft_term = server.term();
}

pub fn status(e: EtcdError) -> tonic::Status {
    tonic::Status::new(tonic::Code::from(e.code() as i32), e.message())
}

/// The verified client certificate's common name, put on each request of a TLS connection that presented one.
#[derive(Clone)]
pub struct CertCommonName(pub std::sync::Arc<str>);

/// What a request presents to be identified by: its `token` metadata (the gateway's `Authorization` header)
/// and its client certificate's CN. A stream keeps them and resolves them again for each request it carries.
#[derive(Clone, Default)]
pub struct Credentials {
    token: Option<String>,
    cn: Option<std::sync::Arc<str>>,
}

impl Credentials {
    pub fn of<T>(req: &tonic::Request<T>) -> Credentials {
        let md = req.metadata();
        let token = md.get("token").or_else(|| md.get("authorization")).and_then(|v| v.to_str().ok());
        Credentials {
            token: token.map(str::to_string),
            cn: req.extensions().get::<CertCommonName>().map(|c| c.0.clone()),
        }
    }

    /// The caller they name now (None while auth is off).
    pub fn resolve(&self, server: &EtcdServer) -> Result<Option<crate::auth::AuthInfo>, EtcdError> {
        server.auth.caller(self.token.as_deref(), self.cn.as_deref())
    }
}

/// The caller of a gRPC (or gateway) request: the user of its token, else its client certificate's CN; None
/// while auth is off.
pub fn caller<T>(server: &EtcdServer, req: &tonic::Request<T>) -> Result<Option<crate::auth::AuthInfo>, tonic::Status> {
    // Before copying anything out of the request: the hot path while auth is off.
    if !server.auth.is_enabled() {
        return Ok(None);
    }
    Credentials::of(req).resolve(server).map_err(status)
}
