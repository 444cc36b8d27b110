"""Every request is checked once auth is on: etcd's security advisories as tests, JWT tokens and the auth
revision, and the JSON gateway's ``Authorization`` header.

etcd 3.4.23 (the differential reference) has all four advisories' holes, so these run against ours alone and
assert the fixed releases' behaviour (3.4.42+/3.5.28+; the from-key watch fix is 3.5.33+).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.servers import Server, start_server
from pyetcd_fast.etcdpb.authpb import auth_pb2
from pyetcd_fast.etcdpb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

USER_EMPTY = "etcdserver: user name is empty"
DENIED = "etcdserver: permission denied"


class Stubs:
    def __init__(self, endpoint: str) -> None:
        self.ch = grpc.insecure_channel(endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.ch)
        self.auth = rpc_pb2_grpc.AuthStub(self.ch)
        self.lease = rpc_pb2_grpc.LeaseStub(self.ch)
        self.maint = rpc_pb2_grpc.MaintenanceStub(self.ch)
        self.cluster = rpc_pb2_grpc.ClusterStub(self.ch)
        self.watch = rpc_pb2_grpc.WatchStub(self.ch)

    def token(self, name: str, password: str) -> list[tuple[str, str]]:
        t = self.auth.Authenticate(rpc_pb2.AuthenticateRequest(name=name, password=password), timeout=10).token
        return [("token", t)]


def perm(kind: int, key: bytes, end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=end)


def setup(s: Stubs) -> None:
    """root; alice with readwrite on a/ and read on exactly k; keys a/1, k, zz (zz on a lease); auth on."""
    a = s.auth
    a.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
    a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
    a.UserAdd(rpc_pb2.AuthUserAddRequest(name="alice", password="apw"), timeout=10)
    a.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r1"), timeout=10)
    grants = [perm(auth_pb2.Permission.READWRITE, b"a/", b"a0"), perm(auth_pb2.Permission.READ, b"k")]
    for p in grants:
        a.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="r1", perm=p), timeout=10)
    a.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="alice", role="r1"), timeout=10)
    lease = s.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600), timeout=10).ID
    for k, v, le in ((b"a/1", b"x", 0), (b"k", b"kv", 0), (b"zz", b"secret", lease)):
        s.kv.Put(rpc_pb2.PutRequest(key=k, value=v, lease=le), timeout=10)
    a.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)


def denied(call, code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert (e.value.code(), e.value.details()) == (code, message)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server("ours", tmp_path / "ours")
    yield srv
    srv.stop()


@pytest.fixture
def stubs(server: Server) -> Iterator[Stubs]:
    s = Stubs(server.endpoint)
    setup(s)
    yield s
    s.ch.close()


def nested(op: rpc_pb2.RequestOp) -> rpc_pb2.TxnRequest:
    inner = rpc_pb2.TxnRequest(success=[op])
    return rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_txn=inner)])


def test_nested_txn_ops_are_checked_GHSA_rfx7_8w68_q57q(stubs: Stubs) -> None:
    alice = stubs.token("alice", "apw")
    read_zz = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"zz"))
    write_zz = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"zz", value=b"pwned"))
    for t in (nested(read_zz), nested(write_zz)):
        denied(lambda t=t: stubs.kv.Txn(t, metadata=alice, timeout=10), grpc.StatusCode.PERMISSION_DENIED, DENIED)
    # A compare inside the nested txn is checked as well.
    inner = rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"zz", target=rpc_pb2.Compare.VALUE, value=b"s")])
    t = rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(request_txn=inner)])
    denied(lambda: stubs.kv.Txn(t, metadata=alice, timeout=10), grpc.StatusCode.PERMISSION_DENIED, DENIED)
    root = stubs.token("root", "rootpw")
    assert stubs.kv.Range(rpc_pb2.RangeRequest(key=b"zz"), metadata=root, timeout=10).kvs[0].value == b"secret"
    ok = nested(rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/2", value=b"y")))
    assert stubs.kv.Txn(ok, metadata=alice, timeout=10).succeeded


def test_a_from_key_watch_needs_the_whole_range_GHSA_xg4h_6gfc_h4m8(stubs: Stubs) -> None:
    alice = stubs.token("alice", "apw")

    def first(create: rpc_pb2.WatchCreateRequest) -> rpc_pb2.WatchResponse:
        call = stubs.watch.Watch(iter([rpc_pb2.WatchRequest(create_request=create)]), metadata=alice, timeout=5)
        resp = next(call)
        call.cancel()
        return resp

    r = first(rpc_pb2.WatchCreateRequest(key=b"k", range_end=b"\x00"))
    assert (r.created, r.canceled, r.watch_id, r.cancel_reason) == (True, True, -1, DENIED)
    r = first(rpc_pb2.WatchCreateRequest(key=b"zz"))
    assert (r.canceled, r.cancel_reason) == (True, DENIED)
    r = first(rpc_pb2.WatchCreateRequest(key=b"k"))
    assert r.created and not r.canceled


def test_lease_time_to_live_keys_need_read_GHSA_3p4g_rcw5_8298(stubs: Stubs) -> None:
    alice = stubs.token("alice", "apw")
    root = stubs.token("root", "rootpw")
    lease = stubs.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), metadata=root, timeout=10).leases[0].ID
    req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True)
    denied(
        lambda: stubs.lease.LeaseTimeToLive(req, metadata=alice, timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
        DENIED,
    )
    assert stubs.lease.LeaseTimeToLive(req, metadata=root, timeout=10).keys == [b"zz"]
    no_keys = rpc_pb2.LeaseTimeToLiveRequest(ID=lease)
    assert stubs.lease.LeaseTimeToLive(no_keys, metadata=alice, timeout=10).TTL > 0
    # Keeping it alive, or listing leases, would reveal or extend keys alice cannot write or read.
    ka = stubs.lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease)]), metadata=alice, timeout=5)
    denied(lambda: next(ka), grpc.StatusCode.PERMISSION_DENIED, DENIED)
    denied(
        lambda: stubs.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), metadata=alice, timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
        DENIED,
    )


def test_admin_and_lease_rpcs_need_a_user_GHSA_q8m4_xhhv_38mg(stubs: Stubs) -> None:
    alice = stubs.token("alice", "apw")
    m, le = stubs.maint, stubs.lease
    activate = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, alarm=rpc_pb2.NOSPACE, memberID=1)
    root_only = [
        lambda md: m.Status(rpc_pb2.StatusRequest(), metadata=md, timeout=10),
        lambda md: stubs.kv.Compact(rpc_pb2.CompactionRequest(revision=1), metadata=md, timeout=10),
        lambda md: m.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=1), metadata=md, timeout=10),
        lambda md: m.Alarm(activate, metadata=md, timeout=10),
        lambda md: m.Defragment(rpc_pb2.DefragmentRequest(), metadata=md, timeout=10),
        lambda md: m.HashKV(rpc_pb2.HashKVRequest(), metadata=md, timeout=10),
        lambda md: next(m.Snapshot(rpc_pb2.SnapshotRequest(), metadata=md, timeout=10)),
        lambda md: stubs.cluster.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=1), metadata=md, timeout=10),
    ]
    any_user = [
        lambda md: stubs.cluster.MemberList(rpc_pb2.MemberListRequest(), metadata=md, timeout=10),
        lambda md: m.Alarm(rpc_pb2.AlarmRequest(), metadata=md, timeout=10),
        lambda md: le.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), metadata=md, timeout=10),
    ]
    for call in root_only + any_user:
        denied(lambda call=call: call(None), grpc.StatusCode.INVALID_ARGUMENT, USER_EMPTY)
    for call in root_only:
        denied(lambda call=call: call(alice), grpc.StatusCode.PERMISSION_DENIED, DENIED)
    for call in any_user:
        call(alice)
    lease = le.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), metadata=alice, timeout=10).ID
    revoke = rpc_pb2.LeaseRevokeRequest(ID=lease)
    denied(lambda: le.LeaseRevoke(revoke, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, USER_EMPTY)
    ttl = rpc_pb2.LeaseTimeToLiveRequest(ID=lease)
    denied(lambda: le.LeaseTimeToLive(ttl, timeout=10), grpc.StatusCode.INVALID_ARGUMENT, USER_EMPTY)
    le.LeaseRevoke(revoke, metadata=alice, timeout=10)


def test_a_bad_token_is_unauthenticated(stubs: Stubs) -> None:
    denied(
        lambda: stubs.kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=[("token", "nope.1")], timeout=10),
        grpc.StatusCode.UNAUTHENTICATED,
        "etcdserver: invalid auth token",
    )


def test_jwt_tokens_carry_the_auth_revision(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    priv.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    spec = f"jwt,pub-key={pub},priv-key={priv},sign-method=RS256,ttl=10m"
    srv = start_server("ours", tmp_path / "ours", ["--auth-token", spec])
    s = Stubs(srv.endpoint)
    try:
        setup(s)
        alice = s.token("alice", "apw")
        assert alice[0][1].count(".") == 2  # header.claims.signature
        assert s.kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=alice, timeout=10).kvs[0].value == b"kv"
        root = s.token("root", "rootpw")
        s.auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r2"), metadata=root, timeout=10)
        denied(
            lambda: s.kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=alice, timeout=10),
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: revision of auth store is old",
        )
        again = s.token("alice", "apw")
        assert s.kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=again, timeout=10).count == 1
    finally:
        s.ch.close()
        srv.stop()


def test_the_gateway_reads_the_authorization_header(stubs: Stubs, server: Server) -> None:
    base = f"http://{server.endpoint}/v3"

    def post(path: str, body: dict, token: str | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST")
        if token:
            req.add_header("Authorization", token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    code, body = post("/auth/authenticate", {"name": "alice", "password": "apw"})
    assert code == 200 and body["token"]
    token = body["token"]
    code, body = post("/kv/range", {"key": "aw=="}, token)  # "k"
    assert code == 200 and body["kvs"][0]["value"] == "a3Y="
    assert post("/kv/range", {"key": "aw=="}) == (400, {"error": USER_EMPTY, "message": USER_EMPTY, "code": 3})
    assert post("/kv/range", {"key": "eno="}, token)[0] == 403  # "zz"
