"""Builds the optional fused CPU kernels (plain C, no torch headers, loaded with ctypes).

If no C compiler is available the build of the extension is skipped and quantscope falls back to
its pure-torch reference path, which gives bit-identical results, only slower.
"""

import sys

from setuptools import Extension, setup

compile_args = ["-O3", "-std=c11", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
if sys.platform == "win32":
    compile_args = ["/O2", "/fp:precise"]

setup(
    ext_modules=[
        Extension(
            "quantscope.core._kernels",
            sources=["quantscope/core/_kernels.c"],
            extra_compile_args=compile_args,
            optional=True,
        )
    ]
)
