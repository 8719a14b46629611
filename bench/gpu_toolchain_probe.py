"""Does the machine's compiler build torch extensions whose error messages work?

Builds a 5-line extension with torch's own default flags (``load_inline``) whose op fails a
``TORCH_CHECK_VALUE`` with an integer in its message, calls it in a child process and reports
whether the ValueError arrives or the process dies. On the GPU image of 2026-11 (Ubuntu 24.04,
g++ 13.3, torch 2.11.0+cu130) it dies with SIGSEGV inside ``std::ostream::operator<<(long)``
compiled into the extension: every extension built there, himnet_fast._C included, crashes on
such an error path (BENCHMARKS.md, GPU). bench/gpu_check.sh runs this when its op tests fail,
so that such failures are told apart from defects of the ops.

    python bench/gpu_toolchain_probe.py     # exit 0: errors arrive; 1: the process crashed
"""
from __future__ import annotations

import subprocess
import sys

SOURCE = r"""
#include <torch/library.h>
at::Tensor probe(const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.dim() == 99, "probe: wanted 99 dims, got ", x.dim());
  return x;
}
TORCH_LIBRARY(himnet_toolchain_probe, m) { m.def("probe(Tensor x) -> Tensor"); }
TORCH_LIBRARY_IMPL(himnet_toolchain_probe, CPU, m) { m.impl("probe", &probe); }
"""

CHILD = f"""
import torch
from torch.utils.cpp_extension import load_inline
load_inline("himnet_toolchain_probe", cpp_sources={SOURCE!r}, is_python_module=False)
try:
    torch.ops.himnet_toolchain_probe.probe(torch.zeros(1))
except ValueError as e:
    print("error arrived:", e)
"""


def main() -> int:
    import shutil

    compiler = shutil.which("c++") or "c++ (not found)"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if shutil.which("c++") else ""
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600)
    crashed = done.returncode < 0 or "error arrived" not in done.stdout
    print(f"compiler: {version}")
    print(f"minimal extension error path: {'CRASHED (exit %d)' % done.returncode if crashed else 'ok'}")
    print((done.stdout + done.stderr)[-600:])
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
