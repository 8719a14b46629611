// proposals: its schema and input checks (proposals_op.h), shared by the CPU and CUDA
// kernels (cpu/, cuda/).
#include "proposals_op.h"

#include <torch/library.h>

#include <cmath>

#include "proposals.h"

namespace himnet_fast {

void define_proposals(torch::Library& m) {
  // Connected-component proposals with OIC scores over ragged videos packed along
  // time: attention (S,), cas (S, K) (same float dtype), offsets (V+1,) int64,
  // selected (R, 2) int64 rows (video, class), video_scores (R,) float64,
  // thresholds (H,) float64 -> ids (P, 4) int64 (video, class, start, end), end
  // exclusive, ordered by row, threshold, start; scores (P,) float64.
  m.def(
      "proposals(Tensor attention, Tensor cas, Tensor offsets, Tensor selected, "
      "Tensor video_scores, Tensor thresholds, float weight) -> (Tensor, Tensor)");
}

namespace {

// No NaN or infinity in x (contiguous float32 / float64).
bool finite(const at::Tensor& x) {
  if (!x.is_cpu()) return at::isfinite(x).all().item<bool>();
  return x.scalar_type() == at::kFloat ? all_finite(x.data_ptr<float>(), x.numel())
                                       : all_finite(x.data_ptr<double>(), x.numel());
}

}  // namespace

ProposalInputs check_proposals_inputs(const at::Tensor& attention_in, const at::Tensor& cas_in,
                                      const at::Tensor& offsets_in, const at::Tensor& selected_in,
                                      const at::Tensor& video_scores_in, const at::Tensor& thresholds_in,
                                      double weight) {
  TORCH_CHECK_VALUE(attention_in.dim() == 1, "proposals: attention must be 1D (S,), got shape ", attention_in.sizes());
  const int64_t S = attention_in.size(0);
  TORCH_CHECK_VALUE(cas_in.dim() == 2 && cas_in.size(0) == S, "proposals: cas must be (S, K) with S = len(attention) = ",
                    S, ", got ", cas_in.sizes());
  TORCH_CHECK_VALUE(attention_in.scalar_type() == cas_in.scalar_type() &&
                        (cas_in.scalar_type() == at::kFloat || cas_in.scalar_type() == at::kDouble),
                    "proposals: attention and cas must share a dtype, float32 or float64");
  TORCH_CHECK_VALUE(offsets_in.dim() == 1 && offsets_in.size(0) >= 1 && offsets_in.scalar_type() == at::kLong,
                    "proposals: offsets must be 1D int64 (V+1,), got ", offsets_in.sizes());
  TORCH_CHECK_VALUE(selected_in.dim() == 2 && selected_in.size(1) == 2 && selected_in.scalar_type() == at::kLong,
                    "proposals: selected must be (R, 2) int64 rows (video, class)");
  const int64_t rows = selected_in.size(0);
  TORCH_CHECK_VALUE(video_scores_in.dim() == 1 && video_scores_in.size(0) == rows &&
                        video_scores_in.scalar_type() == at::kDouble,
                    "proposals: video_scores must be (R,) float64, one entry per selected row (", rows, "), got ",
                    video_scores_in.sizes());
  TORCH_CHECK_VALUE(thresholds_in.dim() == 1 && thresholds_in.scalar_type() == at::kDouble,
                    "proposals: thresholds must be 1D float64");
  for (const at::Tensor* t : {&cas_in, &offsets_in, &selected_in, &video_scores_in, &thresholds_in}) {
    TORCH_CHECK_VALUE(t->device() == attention_in.device(),
                      "proposals: every input must be on the same device as attention");
  }
  TORCH_CHECK_VALUE(std::isfinite(weight), "proposals: weight must be a finite number, got ", weight);
  const ProposalInputs in{attention_in.contiguous(), cas_in.contiguous(), offsets_in.contiguous(),
                          selected_in.contiguous(), video_scores_in.contiguous(), thresholds_in.contiguous(),
                          offsets_in.size(0) - 1, cas_in.size(1), rows, thresholds_in.size(0)};
  // The small inputs' values on the host (one copy each from a GPU).
  const at::Tensor offsets = in.offsets.cpu(), selected = in.selected.cpu();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t* sel = selected.data_ptr<int64_t>();
  bool rising = off[0] == 0 && off[in.videos] == S;
  for (int64_t v = 0; v < in.videos; ++v) rising = rising && off[v] <= off[v + 1];
  TORCH_CHECK_VALUE(rising, "proposals: offsets must rise from 0 to len(attention) = ", S);
  for (int64_t r = 0; r < rows; ++r) {
    TORCH_CHECK_VALUE(sel[2 * r] >= 0 && sel[2 * r] < in.videos && sel[2 * r + 1] >= 0 && sel[2 * r + 1] < in.K,
                      "proposals: selected rows must name videos in [0, ", in.videos, ") and classes in [0, ", in.K,
                      "), got selected[", r, "] = (", sel[2 * r], ", ", sel[2 * r + 1], ")");
  }
  TORCH_CHECK_VALUE(finite(in.video_scores) && finite(in.thresholds),
                    "proposals: video_scores and thresholds must be finite");
  TORCH_CHECK_VALUE(finite(in.attention) && finite(in.cas),
                    "proposals: attention and cas must be finite (found NaN or infinity)");
  return in;
}

}  // namespace himnet_fast
