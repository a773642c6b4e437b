"""Builds the envelope C library with cargo and bundles it into the package.

`pip install ./bindings/python` runs this: it needs a Rust toolchain (cargo) and builds
`envelope-ffi` in release mode from the repository this directory belongs to. Set
ENVELOPE_FFI_LIB to the path of an already built `libenvelope_ffi.so` to skip cargo.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LIB_NAME = "libenvelope_ffi.dylib" if sys.platform == "darwin" else "libenvelope_ffi.so"


def build_native_library() -> Path:
    prebuilt = os.environ.get("ENVELOPE_FFI_LIB")
    if prebuilt:
        return Path(prebuilt)
    if not (REPO / "Cargo.toml").exists():
        raise RuntimeError(f"cannot find the envelope repository above {HERE}")
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    subprocess.run(
        [cargo, "build", "--release", "--locked", "-p", "envelope-ffi"],
        cwd=REPO,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / LIB_NAME


class BuildWithNativeLibrary(build_py):
    def run(self):
        library = build_native_library()
        if not library.exists():
            raise RuntimeError(f"cargo did not produce {library}")
        package_dir = HERE / "src" / "envelope_sdk"
        shutil.copy2(library, package_dir / LIB_NAME)
        super().run()


class BinaryDistribution(Distribution):
    """The wheel carries a native library: it is platform-specific."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithNativeLibrary}, distclass=BinaryDistribution)
