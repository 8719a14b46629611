"""Build himnet_fast and its native extension himnet_fast._C.

A CUDAExtension is built when the installed torch is a CUDA build and nvcc is
found, a CppExtension otherwise. Install after torch:
    pip install --no-build-isolation -e .
Environment knobs: HIMNET_FAST_NO_CUDA=1 forces the CPU-only extension;
TORCH_CUDA_ARCH_LIST defaults to 9.0 (H100/H200) when no GPU is visible.
"""
import glob
import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent


def _find_nvcc_home():
    """The CUDA toolkit folder holding bin/nvcc (following wrapper scripts)."""
    if os.environ.get("CUDA_HOME"):
        return Path(os.environ["CUDA_HOME"])
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    candidates = [Path(nvcc).resolve().parent.parent]
    # /usr/local/bin/nvcc may be a wrapper script around the real toolkit's nvcc.
    text = Path(nvcc).read_bytes()[:4096]
    if text.startswith(b"#!"):
        for token in text.decode(errors="ignore").split():
            if token.endswith("/bin/nvcc"):
                candidates.insert(0, Path(token).parent.parent)
    for home in candidates:
        if (home / "bin" / "nvcc").exists():
            return home
    return None


nvcc_home = _find_nvcc_home()
if nvcc_home is not None and "CUDA_HOME" not in os.environ:
    os.environ["CUDA_HOME"] = str(nvcc_home)  # must precede the cpp_extension import

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

use_cuda = (
    torch.version.cuda is not None
    and nvcc_home is not None
    and os.environ.get("HIMNET_FAST_NO_CUDA") != "1"
)
if use_cuda and not torch.cuda.is_available():
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")

# One folder per op: csrc/ops/<op>/*.cpp (its plain C++ algorithm and <op>_op.cpp, the
# schema and input checks), cpu/ and cuda/ (its kernels).
cpp_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/ops/*/*.cpp") + glob.glob("csrc/ops/*/cpu/*.cpp"))
cuda_sources = sorted(glob.glob("csrc/ops/*/cuda/*.cpp") + glob.glob("csrc/ops/*/cuda/*.cu"))
include_dirs = [str(ROOT / "csrc")]
library_dirs = []
# No FMA contraction anywhere: the native ops must round exactly like the references.
# -fno-trapping-math only lets loops with float selects vectorize (results unchanged).
cxx_flags = ["-O3", "-ffp-contract=off", "-fno-trapping-math"]  # the C++ standard comes from torch (C++20 for torch >= 2.10)
define_macros = [("Py_LIMITED_API", "0x03090000")]

if use_cuda:
    # pip's CUDA 13 wheels ship the runtime headers here; the system toolkit may not.
    pip_cuda_include = Path(torch.__file__).resolve().parent.parent / "nvidia" / "cu13" / "include"
    if pip_cuda_include.is_dir():
        include_dirs.append(str(pip_cuda_include))
    for lib in ("lib64", "lib"):
        if (nvcc_home / lib).is_dir():
            library_dirs.append(str(nvcc_home / lib))
    ext = CUDAExtension(
        "himnet_fast._C",
        cpp_sources + cuda_sources,
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        define_macros=define_macros + [("HIMNET_FAST_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr", "-fmad=false"]},
        py_limited_api=True,
    )
else:
    ext = CppExtension(
        "himnet_fast._C",
        cpp_sources,
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags},
        py_limited_api=True,
    )

packages = find_packages(include=["himnet_fast", "himnet_fast.*"]) + ["himnet_fast.kernels"]
setup(
    packages=packages,
    package_dir={"himnet_fast.kernels": "kernels"},
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
