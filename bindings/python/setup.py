"""Builds the envelope C library with cargo and bundles it into the package.

`pip install ./bindings/python` (or `scripts/build-wheel.sh`, which makes the manylinux
wheel users install) runs this: it needs a Rust toolchain (cargo) and builds `envelope-ffi`
in release mode from the repository this directory belongs to. Set ENVELOPE_FFI_LIB to the
path of an already built `libenvelope_ffi.so` to skip cargo. The version is the workspace's
(`Cargo.toml`), the project's one version.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70
    from wheel.bdist_wheel import bdist_wheel

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


def workspace_version() -> str:
    cargo_toml = (REPO / "Cargo.toml").read_text()
    section = cargo_toml.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
    if not match:
        raise RuntimeError("no version in [workspace.package] of Cargo.toml")
    return match.group(1)


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


class PlatformWheel(bdist_wheel):
    """`py3-none-<platform>`: no extension module (cffi ABI mode), so any CPython 3 loads it;
    the platform tag is the native library's (auditwheel narrows linux_* to manylinux)."""

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    version=workspace_version(),
    cmdclass={"build_py": BuildWithNativeLibrary, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)
