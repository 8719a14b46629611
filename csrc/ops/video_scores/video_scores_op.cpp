// video_scores: its schema, input checks and CPU kernel (the only one: ops.postprocess.video_scores
// copies CUDA inputs to the CPU).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "video_scores.h"

namespace himnet_fast {

void define_video_scores(torch::Library& m) {
  // Video-level class scores of V ragged videos: cas (S, K) packed along time,
  // offsets (V+1,) int64 -> (V, K-1) float64 (softmax of top-k means, k = max(1, T/r),
  // background dropped).
  m.def("video_scores(Tensor cas, Tensor offsets, int r) -> Tensor");
}

namespace {

at::Tensor video_scores_cpu(const at::Tensor& cas_in, const at::Tensor& offsets_in, int64_t r) {
  TORCH_CHECK_VALUE(cas_in.dim() == 2 && cas_in.size(1) >= 2 &&
                        (cas_in.scalar_type() == at::kFloat || cas_in.scalar_type() == at::kDouble),
                    "video_scores: cas must be (S, K >= 2) float32 or float64, got ", cas_in.sizes(), " ",
                    cas_in.scalar_type());
  TORCH_CHECK_VALUE(offsets_in.dim() == 1 && offsets_in.size(0) >= 1 && offsets_in.scalar_type() == at::kLong,
                    "video_scores: offsets must be 1D int64 (V+1,)");
  TORCH_CHECK_VALUE(r >= 1, "video_scores: r must be a positive integer, got ", r);
  const at::Tensor cas = cas_in.contiguous(), offsets = offsets_in.contiguous();
  const int64_t videos = offsets.size(0) - 1, K = cas.size(1);
  const int64_t* off = offsets.data_ptr<int64_t>();
  bool rising = off[0] == 0 && off[videos] == cas.size(0);
  for (int64_t v = 0; v < videos; ++v) rising = rising && off[v + 1] > off[v];
  TORCH_CHECK_VALUE(rising, "video_scores: offsets must rise strictly from 0 to len(cas) = ", cas.size(0),
                    " (every T_v >= 1)");
  at::Tensor out = at::empty({videos, K - 1}, cas.options().dtype(at::kDouble));
  double* o = out.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(cas.scalar_type(), "video_scores_cpu", [&] {
    const scalar_t* x = cas.data_ptr<scalar_t>();
    std::vector<uint8_t> finite(videos, 1);  // checked by the kernel in passing (its key ranges)
    at::parallel_for(0, videos, 8, [&](int64_t begin, int64_t end) {
      VideoScoresWorkspace buf;
      for (int64_t v = begin; v < end; ++v) {
        finite[v] = video_class_scores(x + off[v] * K, off[v + 1] - off[v], K, r, buf, o + v * (K - 1));
      }
    });
    TORCH_CHECK_VALUE(std::all_of(finite.begin(), finite.end(), [](uint8_t f) { return f != 0; }),
                      "video_scores: cas must be finite (found NaN or infinity)");
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CPU, m) { m.impl("video_scores", &video_scores_cpu); }

}  // namespace himnet_fast
