"""Builds the native extension (Rust, setuptools-rust). The Python protobuf stubs (``pyetcd_fast.etcdpb``) are
not part of the package: tests and benches make them with ``tools/gen_pb.py`` (``make develop``).

Cython extensions, when the project has them, are added to ``ext_modules`` beside the RustExtension.
"""

from setuptools import setup
from setuptools_rust import Binding, RustExtension

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
    zip_safe=False,
)
