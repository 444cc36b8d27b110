//! The client's less frequent calls: Lock and Election (etcd's v3lock and v3election services), Cluster,
//! Maintenance and Auth. Same conventions as `client.rs`: bytes and numbers in, tuples of plain values and
//! `ResponseHeader`s out, the GIL released (or a `token` for `AsyncClient`).
use etcd_core::pb::etcdserverpb as pb;
use etcd_core::pb::{authpb, v3electionpb as el, v3lockpb as lk};
use pyo3::prelude::*;

use crate::client::{header, kv, obj, Client};

/// A member as `(id, name, peer_urls, client_urls, is_learner)`.
type MemberTuple = (u64, String, Vec<String>, Vec<String>, bool);
/// An election's leader key as `(name, key, rev, lease)`.
type LeaderKey = (Vec<u8>, Vec<u8>, i64, i64);

fn member(m: pb::Member) -> MemberTuple {
    (m.id, m.name, m.peer_ur_ls, m.client_ur_ls, m.is_learner)
}

fn members(ms: Vec<pb::Member>) -> Vec<MemberTuple> {
    ms.into_iter().map(member).collect()
}

fn leader_key((name, key, rev, lease): LeaderKey) -> Option<el::LeaderKey> {
    Some(el::LeaderKey { name, key, rev, lease })
}

/// Calls whose answer is only a header.
macro_rules! header_only {
    ($self:ident, $py:ident, $path:literal, $req:expr, $resp:ty, $timeout:ident, $token:ident) => {
        $self.run($py, $path, $req, false, $timeout, $token, |py, r: $resp| obj(py, header(r.header)))
    };
}

#[pymethods]
impl Client {
    /// v3lock Lock: waits until `name` is held with `lease`; (header, key to unlock with).
    #[pyo3(signature = (name, lease, timeout=None, token=None))]
    fn lock(
        &self,
        py: Python<'_>,
        name: Vec<u8>,
        lease: i64,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = lk::LockRequest { name, lease };
        self.run(py, "/v3lockpb.Lock/Lock", req, false, timeout, token, |py, r: lk::LockResponse| {
            obj(py, (header(r.header), pyo3::types::PyBytes::new(py, &r.key)))
        })
    }

    #[pyo3(signature = (key, timeout=None, token=None))]
    fn unlock(&self, py: Python<'_>, key: Vec<u8>, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        header_only!(self, py, "/v3lockpb.Lock/Unlock", lk::UnlockRequest { key }, lk::UnlockResponse, timeout, token)
    }

    /// v3election Campaign: waits until elected; (header, leader key).
    #[pyo3(signature = (name, lease, value, timeout=None, token=None))]
    fn campaign(
        &self,
        py: Python<'_>,
        name: Vec<u8>,
        lease: i64,
        value: Vec<u8>,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = el::CampaignRequest { name, lease, value };
        self.run(py, "/v3electionpb.Election/Campaign", req, false, timeout, token, |py, r: el::CampaignResponse| {
            let l = r.leader.unwrap_or_default();
            let key = (pyo3::types::PyBytes::new(py, &l.name), pyo3::types::PyBytes::new(py, &l.key), l.rev, l.lease);
            obj(py, (header(r.header), key))
        })
    }

    #[pyo3(signature = (leader, value, timeout=None, token=None))]
    fn proclaim(
        &self,
        py: Python<'_>,
        leader: LeaderKey,
        value: Vec<u8>,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = el::ProclaimRequest { leader: leader_key(leader), value };
        header_only!(self, py, "/v3electionpb.Election/Proclaim", req, el::ProclaimResponse, timeout, token)
    }

    #[pyo3(signature = (leader, timeout=None, token=None))]
    fn resign(
        &self,
        py: Python<'_>,
        leader: LeaderKey,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = el::ResignRequest { leader: leader_key(leader) };
        header_only!(self, py, "/v3electionpb.Election/Resign", req, el::ResignResponse, timeout, token)
    }

    /// v3election Leader: (header, the leader's KeyValue or None when there is none).
    #[pyo3(signature = (name, timeout=None, token=None))]
    fn election_leader(
        &self,
        py: Python<'_>,
        name: Vec<u8>,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = el::LeaderRequest { name };
        let path = "/v3electionpb.Election/Leader";
        self.run(py, path, req, true, timeout, token, |py, r: el::LeaderResponse| {
            let leader = r.kv.map(|k| Py::new(py, kv(py, k))).transpose()?;
            obj(py, (header(r.header), leader))
        })
    }

    // -- cluster ------------------------------------------------------------------------------------------

    #[pyo3(signature = (timeout=None, token=None))]
    fn member_list(&self, py: Python<'_>, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let path = "/etcdserverpb.Cluster/MemberList";
        self.run(py, path, pb::MemberListRequest::default(), true, timeout, token, |py, r: pb::MemberListResponse| {
            obj(py, (header(r.header), members(r.members)))
        })
    }

    #[pyo3(signature = (peer_urls, is_learner, timeout=None, token=None))]
    fn member_add(
        &self,
        py: Python<'_>,
        peer_urls: Vec<String>,
        is_learner: bool,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::MemberAddRequest { peer_ur_ls: peer_urls, is_learner };
        self.run(py, "/etcdserverpb.Cluster/MemberAdd", req, false, timeout, token, |py, r: pb::MemberAddResponse| {
            obj(py, (header(r.header), member(r.member.unwrap_or_default()), members(r.members)))
        })
    }

    #[pyo3(signature = (id, timeout=None, token=None))]
    fn member_remove(&self, py: Python<'_>, id: u64, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::MemberRemoveRequest { id };
        let path = "/etcdserverpb.Cluster/MemberRemove";
        self.run(py, path, req, false, timeout, token, |py, r: pb::MemberRemoveResponse| {
            obj(py, (header(r.header), members(r.members)))
        })
    }

    #[pyo3(signature = (id, peer_urls, timeout=None, token=None))]
    fn member_update(
        &self,
        py: Python<'_>,
        id: u64,
        peer_urls: Vec<String>,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::MemberUpdateRequest { id, peer_ur_ls: peer_urls };
        let path = "/etcdserverpb.Cluster/MemberUpdate";
        self.run(py, path, req, false, timeout, token, |py, r: pb::MemberUpdateResponse| {
            obj(py, (header(r.header), members(r.members)))
        })
    }

    #[pyo3(signature = (id, timeout=None, token=None))]
    fn member_promote(&self, py: Python<'_>, id: u64, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::MemberPromoteRequest { id };
        let path = "/etcdserverpb.Cluster/MemberPromote";
        self.run(py, path, req, false, timeout, token, |py, r: pb::MemberPromoteResponse| {
            obj(py, (header(r.header), members(r.members)))
        })
    }

    // -- maintenance --------------------------------------------------------------------------------------

    /// Alarm: `action` 0 lists, 1 activates, 2 deactivates; (header, [(member_id, alarm)]).
    #[pyo3(signature = (action, member_id, alarm, timeout=None, token=None))]
    fn alarm(
        &self,
        py: Python<'_>,
        action: i32,
        member_id: u64,
        alarm: i32,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::AlarmRequest { action, member_id, alarm };
        self.run(py, "/etcdserverpb.Maintenance/Alarm", req, action == 0, timeout, token, |py, r: pb::AlarmResponse| {
            let alarms: Vec<(u64, i32)> = r.alarms.into_iter().map(|a| (a.member_id, a.alarm)).collect();
            obj(py, (header(r.header), alarms))
        })
    }

    #[pyo3(signature = (timeout=None, token=None))]
    fn defragment(&self, py: Python<'_>, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::DefragmentRequest {};
        header_only!(self, py, "/etcdserverpb.Maintenance/Defragment", req, pb::DefragmentResponse, timeout, token)
    }

    /// HashKV: (header, hash, compact_revision).
    #[pyo3(signature = (revision, timeout=None, token=None))]
    fn hash_kv(&self, py: Python<'_>, revision: i64, timeout: Option<f64>, token: Option<u64>) -> PyResult<PyObject> {
        let req = pb::HashKvRequest { revision };
        self.run(py, "/etcdserverpb.Maintenance/HashKV", req, true, timeout, token, |py, r: pb::HashKvResponse| {
            obj(py, (header(r.header), r.hash, r.compact_revision))
        })
    }

    #[pyo3(signature = (target_id, timeout=None, token=None))]
    fn move_leader(
        &self,
        py: Python<'_>,
        target_id: u64,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let req = pb::MoveLeaderRequest { target_id };
        header_only!(self, py, "/etcdserverpb.Maintenance/MoveLeader", req, pb::MoveLeaderResponse, timeout, token)
    }

    /// Snapshot streamed into `path` (atomically: complete or absent); the bytes written.
    #[pyo3(signature = (path, token=None))]
    fn snapshot(&self, py: Python<'_>, path: String, token: Option<u64>) -> PyResult<PyObject> {
        let core = self.core.clone();
        let fut = async move { etcd_core::client::snapshot::save(&core, &path).await };
        self.finish(py, fut, token, |py, n: u64| obj(py, n))
    }

    // -- auth ---------------------------------------------------------------------------------------------

    /// One Auth call by name (`user_add`, `role_grant_permission`, ...) with its arguments as strings and
    /// bytes; the answer as `auth_answer` spells it.
    #[pyo3(signature = (call, args, timeout=None, token=None))]
    fn auth(
        &self,
        py: Python<'_>,
        call: &str,
        args: Vec<Vec<u8>>,
        timeout: Option<f64>,
        token: Option<u64>,
    ) -> PyResult<PyObject> {
        let s = |i: usize| String::from_utf8_lossy(args.get(i).map_or(&[][..], |v| v)).into_owned();
        let b = |i: usize| args.get(i).cloned().unwrap_or_default();
        macro_rules! call {
            ($path:literal, $req:expr, $resp:ty, |$py:ident, $r:ident| $answer:expr) => {
                self.run(py, concat!("/etcdserverpb.Auth/", $path), $req, false, timeout, token, |$py, $r: $resp| {
                    $answer
                })
            };
        }
        match call {
            "enable" => {
                call!("AuthEnable", pb::AuthEnableRequest {}, pb::AuthEnableResponse, |py, r| obj(py, header(r.header)))
            }
            "disable" => call!("AuthDisable", pb::AuthDisableRequest {}, pb::AuthDisableResponse, |py, r| obj(
                py,
                header(r.header)
            )),
            "user_add" => {
                let req = pb::AuthUserAddRequest { name: s(0), password: s(1), ..Default::default() };
                call!("UserAdd", req, pb::AuthUserAddResponse, |py, r| obj(py, header(r.header)))
            }
            "user_delete" => {
                call!("UserDelete", pb::AuthUserDeleteRequest { name: s(0) }, pb::AuthUserDeleteResponse, |py, r| obj(
                    py,
                    header(r.header)
                ))
            }
            "user_change_password" => {
                let req = pb::AuthUserChangePasswordRequest { name: s(0), password: s(1), ..Default::default() };
                call!("UserChangePassword", req, pb::AuthUserChangePasswordResponse, |py, r| obj(py, header(r.header)))
            }
            "user_grant_role" => {
                let req = pb::AuthUserGrantRoleRequest { user: s(0), role: s(1) };
                call!("UserGrantRole", req, pb::AuthUserGrantRoleResponse, |py, r| obj(py, header(r.header)))
            }
            "user_revoke_role" => {
                let req = pb::AuthUserRevokeRoleRequest { name: s(0), role: s(1) };
                call!("UserRevokeRole", req, pb::AuthUserRevokeRoleResponse, |py, r| obj(py, header(r.header)))
            }
            "user_get" => {
                call!("UserGet", pb::AuthUserGetRequest { name: s(0) }, pb::AuthUserGetResponse, |py, r| obj(
                    py, r.roles
                ))
            }
            "user_list" => {
                call!("UserList", pb::AuthUserListRequest {}, pb::AuthUserListResponse, |py, r| obj(py, r.users))
            }
            "role_add" => {
                call!("RoleAdd", pb::AuthRoleAddRequest { name: s(0) }, pb::AuthRoleAddResponse, |py, r| obj(
                    py,
                    header(r.header)
                ))
            }
            "role_delete" => {
                call!("RoleDelete", pb::AuthRoleDeleteRequest { role: s(0) }, pb::AuthRoleDeleteResponse, |py, r| obj(
                    py,
                    header(r.header)
                ))
            }
            "role_get" => call!("RoleGet", pb::AuthRoleGetRequest { role: s(0) }, pb::AuthRoleGetResponse, |py, r| {
                let perms: Vec<(i32, Vec<u8>, Vec<u8>)> =
                    r.perm.into_iter().map(|p| (p.perm_type, p.key, p.range_end)).collect();
                obj(py, perms)
            }),
            "role_list" => {
                call!("RoleList", pb::AuthRoleListRequest {}, pb::AuthRoleListResponse, |py, r| obj(py, r.roles))
            }
            "role_grant_permission" => {
                let perm_type = s(1).parse::<i32>().unwrap_or_default();
                let perm = authpb::Permission { perm_type, key: b(2), range_end: b(3) };
                let req = pb::AuthRoleGrantPermissionRequest { name: s(0), perm: Some(perm) };
                call!("RoleGrantPermission", req, pb::AuthRoleGrantPermissionResponse, |py, r| obj(
                    py,
                    header(r.header)
                ))
            }
            "role_revoke_permission" => {
                let req = pb::AuthRoleRevokePermissionRequest { role: s(0), key: b(1), range_end: b(2) };
                call!("RoleRevokePermission", req, pb::AuthRoleRevokePermissionResponse, |py, r| obj(
                    py,
                    header(r.header)
                ))
            }
            other => Err(pyo3::exceptions::PyValueError::new_err(format!("no auth call {other:?}"))),
        }
    }
}
