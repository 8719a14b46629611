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
  // Connected-component proposals with OIC scores over ragged videos packed along
  // time: attention (S,), cas (S, K) (same float dtype), offsets (V+1,) int64,
  // selected (R, 2) int64 rows (video, class), video_scores (R,) float64,
  // thresholds (H,) float64 -> ids (P, 4) int64 (video, class, start, end), end
  // exclusive, ordered by row, threshold, start; scores (P,) float64.
  m.def(
      "proposals(Tensor attention, Tensor cas, Tensor offsets, Tensor selected, "
      "Tensor video_scores, Tensor thresholds, float weight) -> (Tensor, Tensor)");
  // Video-level class scores of V ragged videos: cas (S, K) packed along time,
  // offsets (V+1,) int64 -> (V, K-1) float64 (softmax of top-k means, k = max(1, T/r),
  // background dropped). CPU kernel only (a CUDA caller's dispatcher copies to the CPU).
  m.def("video_scores(Tensor cas, Tensor offsets, int r) -> Tensor");
  // (Soft-)NMS of many groups at once: segments (N, 2), scores (N,), groups (N,)
  // int64; method 0 hard, 1 linear, 2 gaussian; offset 0 or 1 (legacy IoU) ->
  // keep (M,) int64 indices ordered by group id then selection, kept scores (M,)
  // float64. quadratic=True runs the O(n^2) baseline loop (CPU; same result).
  // pre_nms_topk=k: only the k highest-scored segments of each group (ties at the cut to
  // the lower index) take part. cancel: a (1,) int32 CPU tensor that the CPU loops read
  // while they run; once another thread sets it non-zero they stop with an error (the
  // CUDA kernel does not read it).
  m.def(
      "batched_soft_nms(Tensor segments, Tensor scores, Tensor groups, int method, float sigma, "
      "float iou_threshold, float min_score, float offset, bool quadratic=False, int? pre_nms_topk=None, "
      "Tensor? cancel=None) -> (Tensor, Tensor)");
}
