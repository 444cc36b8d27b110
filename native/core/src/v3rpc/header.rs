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
