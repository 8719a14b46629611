// The one operator registry of himnet_fast._C: schemas live here, kernels are
// registered per device next to their bindings (csrc/ops/<op>/{cpu,cuda}).
#include <Python.h>
#include <torch/library.h>

// `import himnet_fast._C` loads this library, which runs the registrations below.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(himnet_fast, m) {
  // mask (rows, T) bool, lengths (rows,) int64 -> runs (R, 3) int64 of (row, start, end).
  m.def("mask_runs(Tensor mask, Tensor lengths) -> Tensor");
}
