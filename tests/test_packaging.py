"""What ``pip install pyetcd_fast`` brings: neither grpcio nor protobuf (the server's and the client's wire path
is native), and no generated protobuf stubs; the package imports, serves and answers without them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_runtime_dependencies_have_no_grpc_or_protobuf() -> None:
    deps = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    assert "grpc" not in deps and "protobuf" not in deps
    assert not any("grpc" in r for r in PYPROJECT["build-system"]["requires"])


def test_the_generated_stubs_are_not_packaged() -> None:
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(ROOT), include=find["include"], exclude=find["exclude"])
    assert "pyetcd_fast.client" not in packages and "pyetcd_fast" in packages
    assert not [p for p in packages if "etcdpb" in p]


def test_a_member_and_a_client_work_without_grpc_or_protobuf() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("grpc", "google", "google.protobuf", "pyetcd_fast.etcdpb"):
            sys.modules[name] = None  # any import of them now fails
        import pyetcd_fast as etcd
        with etcd.Etcd() as server:
            client = server.client()
            client.put("k", "v")
            assert client.get("k").value == b"v"
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
