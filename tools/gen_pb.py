"""Generate the Python protobuf and gRPC modules from proto/ into pyetcd_fast/etcdpb/.

Usage: python tools/gen_pb.py [--force] [--check]

grpc_tools.protoc writes absolute imports such as ``from mvccpb import kv_pb2``
because the .proto files import each other as "mvccpb/kv.proto". Those only
resolve if proto/'s layout sits on sys.path, so after generating we rewrite them
to ``from pyetcd_fast.etcdpb.mvccpb import kv_pb2``. The rewrite is anchored on
the known proto package names and is a no-op on already rewritten lines.

Idempotent and cheap: when every generated file is newer than every .proto and
this script, nothing runs. Generation goes to a temporary directory first and a
file is only replaced when its bytes change, so an interrupted run never leaves
a half-written module behind. --check exits 1 if the tree is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "pyetcd_fast" / "etcdpb"
IMPORT_PREFIX = "pyetcd_fast.etcdpb"

# Each directory under proto/ is one protobuf package and one Python subpackage.
PACKAGES = ("mvccpb", "authpb", "etcdserverpb", "v3electionpb", "v3lockpb")

_IMPORT_RE = re.compile(r"^from (" + "|".join(PACKAGES) + r")(\.\S*)? import ", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*/*.proto"))


def expected_outputs(protos: list[Path]) -> list[Path]:
    outs = []
    for p in protos:
        rel = p.relative_to(PROTO_DIR).with_suffix("")
        outs.append(OUT_DIR / rel.parent / f"{rel.name}_pb2.py")
        outs.append(OUT_DIR / rel.parent / f"{rel.name}_pb2_grpc.py")
    outs += [OUT_DIR / pkg / "__init__.py" for pkg in {p.parent.name for p in protos}]
    return outs


def up_to_date(protos: list[Path]) -> bool:
    outs = expected_outputs(protos)
    if not all(o.exists() for o in outs):
        return False
    newest_input = max(p.stat().st_mtime for p in [*protos, Path(__file__)])
    return min(o.stat().st_mtime for o in outs) >= newest_input


def rewrite_imports(text: str) -> str:
    return _IMPORT_RE.sub(lambda m: f"from {IMPORT_PREFIX}.{m.group(1)}{m.group(2) or ''} import ", text)


def generate(protos: list[Path]) -> int:
    """Run protoc into a temp dir, then copy changed files over. Returns how many files changed."""
    from grpc_tools import protoc  # dev dependency; imported late so --help works without it

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpc_tools
    changed = 0
    with tempfile.TemporaryDirectory(prefix="gen_pb_") as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[str(p.relative_to(PROTO_DIR)) for p in protos],
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for pkg in {p.parent.name for p in protos}:
            (Path(tmp) / pkg / "__init__.py").write_text(f'"""Generated from proto/{pkg}/ by tools/gen_pb.py."""\n')
        for src in sorted(Path(tmp).rglob("*.py")):
            dst = OUT_DIR / src.relative_to(tmp)
            data = rewrite_imports(src.read_text())
            if dst.exists() and dst.read_text() == data:
                dst.touch()  # refresh mtime so the fast path sees it as current
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            part = dst.with_suffix(".py.part")
            part.write_text(data)
            part.replace(dst)
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="regenerate even if outputs look current")
    ap.add_argument("--check", action="store_true", help="exit 1 if generated files are missing or stale")
    ns = ap.parse_args(argv)
    protos = proto_files()
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_DIR}")
    if ns.check:
        return 0 if up_to_date(protos) else 1
    if not ns.force and up_to_date(protos):
        return 0
    n = generate(protos)
    print(f"gen_pb: {n} file(s) updated in {OUT_DIR.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
