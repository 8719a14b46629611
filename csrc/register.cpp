// The one operator registry of himnet_fast._C: each op folder (csrc/ops/<op>) defines its
// schema in <op>_op.cpp and registers its kernels per device (cpu/, cuda/).
#include <Python.h>
#include <torch/library.h>

// `import himnet_fast._C` loads this library, which runs the registrations below.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace himnet_fast {
void define_proposals(torch::Library& m);
void define_video_scores(torch::Library& m);
void define_soft_nms(torch::Library& m);
}  // namespace himnet_fast

TORCH_LIBRARY(himnet_fast, m) {
  himnet_fast::define_proposals(m);
  himnet_fast::define_video_scores(m);
  himnet_fast::define_soft_nms(m);
}
