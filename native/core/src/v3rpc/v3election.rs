//! v3electionpb.Election: leader election on a key prefix (etcd's v3election over clientv3's
//! concurrency.Election). The leader is the contender with the lowest create revision under `name/`; its
//! value is the proclaimed one.
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::concurrency::{self as cc, prefix, prefix_end};
use super::header::{fill, status};
use super::lease::async_stream;
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::{compare::CompareResult, ResponseHeader, TxnRequest};
use crate::pb::mvccpb::event::EventType;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};

pub struct ElectionService {
    pub server: Arc<EtcdServer>,
}

fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

fn filled(server: &EtcdServer, h: Option<ResponseHeader>) -> Option<ResponseHeader> {
    let mut h = h;
    fill(server, &mut h);
    h
}

fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(&self, req: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let c = cc::Client::of(&self.server, &req)?;
        let r = req.into_inner();
        let s = &c;
        let pfx = prefix(&r.name);
        let (resp, key, lease) = cc::claim(s, &r.name, r.lease, &r.value, Vec::new()).await?;
        let mut rev = resp.header.map_or(0, |h| h.revision);
        if !resp.succeeded {
            let kv = cc::txn_range_kv(&resp, 0).unwrap_or_default();
            rev = kv.create_revision;
            if kv.value != r.value {
                proclaim(s, &key, rev, lease, &r.value).await?;
            }
        }
        cc::wait_deletes(s, &pfx, rev - 1).await.map_err(cc::unknown)?;
        let leader = LeaderKey { name: r.name, key, rev, lease };
        // The header is the campaign txn's, as clientv3's Election keeps it.
        Ok(Response::new(CampaignResponse { header: filled(s, resp.header), leader: Some(leader) }))
    }

    async fn proclaim(&self, req: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let c = cc::Client::of(&self.server, &req)?;
        let r = req.into_inner();
        let l = r.leader.ok_or_else(missing_leader)?;
        let h = proclaim(&c, &l.key, l.rev, l.lease, &r.value).await?;
        Ok(Response::new(ProclaimResponse { header: filled(&self.server, h) }))
    }

    async fn leader(&self, req: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let c = cc::Client::of(&self.server, &req)?;
        let r = req.into_inner();
        let resp = cc::range(&c, cc::first_owner(&prefix(&r.name))).await.map_err(cc::unknown)?;
        let Some(kv) = resp.kvs.into_iter().next() else { return Err(Status::unknown("election: no leader")) };
        Ok(Response::new(LeaderResponse { header: filled(&self.server, resp.header), kv: Some(kv) }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(&self, req: Request<LeaderRequest>) -> Result<Response<ObserveStream>, Status> {
        let server = cc::Client::of(&self.server, &req)?;
        let r = req.into_inner();
        let out = async_stream(move |tx| async move {
            if let Err(e) = observe(&server, &prefix(&r.name), &tx).await {
                let _ = tx.send(Err(status(e))).await;
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn resign(&self, req: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let c = cc::Client::of(&self.server, &req)?;
        let l = req.into_inner().leader.ok_or_else(missing_leader)?;
        let t = TxnRequest {
            compare: vec![cc::cmp_create(&l.key, CompareResult::Equal, l.rev)],
            success: vec![cc::op_delete(&l.key)],
            failure: vec![],
        };
        let resp = cc::txn(&c, t).await.map_err(cc::unknown)?;
        Ok(Response::new(ResignResponse { header: filled(&self.server, resp.header) }))
    }
}

/// Puts `value` on the leader key if it is still the one created at `rev`.
async fn proclaim(
    s: &cc::Client,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: &[u8],
) -> Result<Option<ResponseHeader>, Status> {
    let t = TxnRequest {
        compare: vec![cc::cmp_create(key, CompareResult::Equal, rev)],
        success: vec![cc::op_put(key, value, lease)],
        failure: vec![],
    };
    let resp = cc::txn(s, t).await.map_err(cc::unknown)?;
    if !resp.succeeded {
        return Err(not_leader());
    }
    Ok(resp.header)
}

/// Streams the leader's key every time it changes: a new leader, or a new value proclaimed.
async fn observe(
    s: &cc::Client,
    pfx: &[u8],
    tx: &tokio::sync::mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Result<(), EtcdError> {
    loop {
        let resp = cc::range(s, cc::first_owner(pfx)).await?;
        let rev = resp.header.map_or(0, |h| h.revision);
        let Some(mut kv) = resp.kvs.into_iter().next() else {
            // No leader yet: wait for the first contender to appear.
            s.auth.check_op(s.who()?.as_ref(), pfx, &prefix_end(pfx), crate::pb::authpb::permission::Type::Read)?;
            let mut w = cc::InternalWatch::new(s, pfx, &prefix_end(pfx), rev + 1, &[]);
            loop {
                let evs = w.next_events().await?;
                if evs.iter().any(|e| e.r#type == EventType::Put as i32) {
                    break;
                }
            }
            continue;
        };
        if tx.send(Ok(LeaderResponse { header: filled(s, None), kv: Some(kv.clone()) })).await.is_err() {
            return Ok(());
        }
        let mut w = cc::InternalWatch::new(s, &kv.key, &[], kv.mod_revision + 1, &[]);
        'leader: loop {
            for ev in w.next_events().await? {
                if ev.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                if let Some(nkv) = ev.kv {
                    if nkv.create_revision == kv.create_revision {
                        kv = nkv;
                        let r = LeaderResponse { header: filled(s, None), kv: Some(kv.clone()) };
                        if tx.send(Ok(r)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}
