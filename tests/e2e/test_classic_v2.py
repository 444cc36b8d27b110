"""etcd 2's classic commands, verbatim, against a ``pyetcd`` started with no flags (clients on 2379 and 4001).

The curl calls are etcd 2's README and v2 API guide as written (``http://127.0.0.1:4001``); the etcdctl calls
are its v2 commands (``ETCDCTL_API=2``, default endpoints ``http://127.0.0.1:2379,http://127.0.0.1:4001``).
Each one's output is checked for what the guide says it shows. The server runs in a scratch directory, so
its default data dir (``default.etcd``) lands there.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.servers import spawn
from harness.v2client import request

ETCDCTL = os.environ.get("PYETCD_TEST_ETCDCTL", "/usr/bin/etcdctl")
CLASSIC = "127.0.0.1:4001"


@pytest.fixture(scope="module")
def default_server(tmp_path_factory) -> Iterator[Path]:
    """``pyetcd`` with no flags, in a scratch cwd; the ports are etcd 2's defaults."""
    cwd = tmp_path_factory.mktemp("classic")
    proc = spawn([sys.executable, "-m", "pyetcd_fast"], cwd / "server.log", cwd=cwd)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(CLASSIC, "GET", "/v2/keys/").status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (cwd / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "pyetcd did not serve on 127.0.0.1:4001"
            time.sleep(0.1)
        yield cwd
    finally:
        proc.terminate()
        proc.wait(10)


def sh(cmd: str, cwd: Path, timeout: float = 20) -> subprocess.CompletedProcess:
    """One command line as a person types it (``shlex`` splitting, no shell)."""
    env = {**os.environ, "ETCDCTL_API": "2"}
    argv = [ETCDCTL if w == "etcdctl" else w for w in shlex.split(cmd)]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def curl(cmd: str, cwd: Path) -> dict:
    r = sh(cmd, cwd)
    assert r.returncode == 0, (cmd, r.stderr)
    return json.loads(r.stdout)


def test_curl_keys_api(default_server: Path) -> None:
    d = default_server
    got = curl('curl -L http://127.0.0.1:4001/v2/keys/mykey -XPUT -d value="this is awesome"', d)
    assert got["action"] == "set" and got["node"]["value"] == "this is awesome"
    assert curl("curl -L http://127.0.0.1:4001/v2/keys/mykey", d)["node"]["value"] == "this is awesome"
    curl('curl -L http://127.0.0.1:4001/v2/keys/message -XPUT -d value="Hello world"', d)
    changed = curl('curl -L http://127.0.0.1:4001/v2/keys/message -XPUT -d value="Hello etcd"', d)
    assert changed["prevNode"]["value"] == "Hello world"
    deleted = curl("curl -L http://127.0.0.1:4001/v2/keys/message -XDELETE", d)
    assert deleted["action"] == "delete" and deleted["prevNode"]["value"] == "Hello etcd"

    ttl = curl("curl -L http://127.0.0.1:4001/v2/keys/foo -XPUT -d value=bar -d ttl=5", d)
    assert ttl["node"]["ttl"] == 5 and "expiration" in ttl["node"]
    waiter = subprocess.Popen(
        shlex.split("curl -L http://127.0.0.1:4001/v2/keys/foo?wait=true"), stdout=subprocess.PIPE, text=True
    )
    time.sleep(0.5)
    assert waiter.poll() is None
    curl("curl -L http://127.0.0.1:4001/v2/keys/foo -XPUT -d value=bar", d)
    event = json.loads(waiter.communicate(timeout=10)[0])
    assert event["action"] == "set" and event["node"]["value"] == "bar"
    index = event["node"]["modifiedIndex"]
    past = curl(f"curl -L 'http://127.0.0.1:4001/v2/keys/foo?wait=true&waitIndex={index}'", d)
    assert past["node"]["modifiedIndex"] == index

    job1 = curl("curl http://127.0.0.1:4001/v2/keys/queue -XPOST -d value=Job1", d)
    job2 = curl("curl http://127.0.0.1:4001/v2/keys/queue -XPOST -d value=Job2", d)
    assert job1["action"] == "create" and job1["node"]["key"] < job2["node"]["key"]
    queue = curl("curl -s 'http://127.0.0.1:4001/v2/keys/queue?recursive=true&sorted=true'", d)
    assert [n["value"] for n in queue["node"]["nodes"]] == ["Job1", "Job2"]

    made = curl("curl -L http://127.0.0.1:4001/v2/keys/dir -XPUT -d ttl=30 -d dir=true", d)
    assert made["node"]["dir"] is True and made["node"]["ttl"] == 30
    refreshed = curl("curl -L http://127.0.0.1:4001/v2/keys/dir -XPUT -d ttl=30 -d dir=true -d prevExist=true", d)
    assert refreshed["action"] == "update"

    (d / "upfile").write_text("Hello\nWorld\n")
    f = curl("curl -L http://127.0.0.1:4001/v2/keys/afile -XPUT --data-urlencode value@upfile", d)
    assert f["node"]["value"] == "Hello\nWorld\n"

    curl("curl -L http://127.0.0.1:4001/v2/keys/foo_dir/foo -XPUT -d value=bar", d)
    listing = curl("curl -L 'http://127.0.0.1:4001/v2/keys/?recursive=true'", d)
    assert {"/foo_dir", "/queue", "/mykey"} <= {n["key"] for n in listing["node"]["nodes"]}
    gone = curl("curl -L 'http://127.0.0.1:4001/v2/keys/foo_dir?recursive=true' -XDELETE", d)
    assert gone["action"] == "delete" and gone["node"]["dir"] is True

    curl("curl -L http://127.0.0.1:4001/v2/keys/cas -XPUT -d value=one", d)
    exists = curl("curl -L http://127.0.0.1:4001/v2/keys/cas?prevExist=false -XPUT -d value=three", d)
    assert exists["errorCode"] == 105
    failed = curl("curl -L http://127.0.0.1:4001/v2/keys/cas?prevValue=two -XPUT -d value=three", d)
    assert failed["errorCode"] == 101 and failed["cause"] == "[two != one]"
    swapped = curl("curl -L http://127.0.0.1:4001/v2/keys/cas?prevValue=one -XPUT -d value=two", d)
    assert swapped["action"] == "compareAndSwap"
    cad = curl("curl -L http://127.0.0.1:4001/v2/keys/cas?prevValue=two -XDELETE", d)
    assert cad["action"] == "compareAndDelete"

    members = curl("curl -L http://127.0.0.1:4001/v2/members", d)
    assert [m["name"] for m in members["members"]] == ["default"]
    assert members["members"][0]["clientURLs"] == ["http://localhost:2379", "http://localhost:4001"]


def test_etcdctl_v2_commands(default_server: Path) -> None:
    d = default_server

    def ok(cmd: str) -> str:
        r = sh(cmd, d)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        return r.stdout

    def fails(cmd: str, code: int, message: str) -> None:
        r = sh(cmd, d)
        assert r.returncode == code and message in r.stderr, (cmd, r.returncode, r.stderr)

    assert ok("etcdctl set /dir/key value") == "value\n"
    assert ok("etcdctl set /ttl/key value --ttl 60") == "value\n"
    assert ok("etcdctl get /dir/key") == "value\n"
    assert ok("etcdctl set /dir/key new --swap-with-value value") == "new\n"
    fails("etcdctl set /dir/key x --swap-with-value nope", 4, "Error:  101: Compare failed ([nope != new])")
    assert ok("etcdctl update /dir/key newer") == "newer\n"
    fails("etcdctl update /dir/missing x", 4, "Error:  100: Key not found (/dir/missing)")
    assert ok("etcdctl mk /dir/made v") == "v\n"
    fails("etcdctl mk /dir/made v", 4, "Error:  105: Key already exists (/dir/made)")
    ok("etcdctl mkdir /newdir")
    ok("etcdctl setdir /setdir")
    ok("etcdctl updatedir /setdir --ttl 100")
    ok("etcdctl rmdir /newdir")
    assert sorted(ok("etcdctl ls --recursive /dir").split()) == ["/dir/key", "/dir/made"]
    assert ok("etcdctl rm /dir/made") == "PrevNode.Value: v\n"
    fails("etcdctl get /dir/made", 4, "Error:  100: Key not found (/dir/made)")

    def background(cmd: str) -> subprocess.Popen:
        argv = [ETCDCTL if w == "etcdctl" else w for w in shlex.split(cmd)]
        env = {**os.environ, "ETCDCTL_API": "2"}
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, cwd=d)

    once = background("etcdctl watch /w/key")
    forever = background("etcdctl watch --forever /w/key")
    execw = background("etcdctl exec-watch --recursive /w -- sh -c 'echo changed $ETCD_WATCH_KEY'")
    try:
        time.sleep(1.0)
        ok("etcdctl set /w/key one")
        assert once.communicate(timeout=10)[0] == "one\n"
        time.sleep(0.3)
        ok("etcdctl set /w/key two")
        time.sleep(1.0)
    finally:
        forever.terminate()
        execw.terminate()
    assert forever.communicate(timeout=10)[0].split() == ["one", "two"]
    assert "changed /w/key" in execw.communicate(timeout=10)[0]

    listed = ok("etcdctl member list")
    assert "name=default" in listed and "peerURLs=http://localhost:2380" in listed and "isLeader=true" in listed
