"""Builds the native extension (Rust, setuptools-rust) and generates the Python protobuf stubs.

Cython extensions, when the project has them, are added to ``ext_modules`` beside the RustExtension.
"""

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools_rust import Binding, RustExtension

ROOT = Path(__file__).resolve().parent


class BuildPyWithProtos(build_py):
    """Generates pyetcd_fast/etcdpb/* from proto/ before the Python files are collected."""

    def run(self) -> None:
        subprocess.check_call([sys.executable, str(ROOT / "tools" / "gen_pb.py")])
        super().run()


setup(
    rust_extensions=[
        RustExtension(
            "pyetcd_fast._native",
            path="native/py/Cargo.toml",
            binding=Binding.PyO3,
            py_limited_api="cp311",
            debug=False,
        )
    ],
    cmdclass={"build_py": BuildPyWithProtos},
    zip_safe=False,
)
