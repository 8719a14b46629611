// CUDA kernel of batched_soft_nms on checked inputs (soft_nms_op.h): grouping and the
// pre_nms_topk cut with ATen on the device, the selection in soft_nms_kernel.cu.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../soft_nms_op.h"
#include "soft_nms_kernel.h"

namespace himnet_fast {
namespace {

// The groups of float64 segments / scores, in index order within each group (the tie rule).
std::tuple<at::Tensor, at::Tensor> soft_nms_groups(const at::Tensor& segments, const at::Tensor& scores,
                                                   const at::Tensor& groups, const NmsParams& params) {
  const int64_t N = segments.size(0);
  const auto [sorted_groups, perm] = groups.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor sizes = std::get<2>(at::unique_consecutive(sorted_groups, false, true));
  const int64_t G = sizes.size(0);
  const at::Tensor group_start = at::cat({at::zeros({1}, sizes.options()), sizes.cumsum(0)}).contiguous();
  const at::Tensor starts = segments.select(1, 0).index_select(0, perm).contiguous();
  const at::Tensor ends = segments.select(1, 1).index_select(0, perm).contiguous();
  at::Tensor work = scores.index_select(0, perm).contiguous();
  at::Tensor alive = at::empty({N}, segments.options().dtype(at::kByte));
  at::Tensor keep_pos = at::empty({N}, groups.options());
  at::Tensor kept = at::empty({N}, scores.options());
  at::Tensor counts = at::empty({G}, groups.options());
  soft_nms_groups_cuda(starts.data_ptr<double>(), ends.data_ptr<double>(), work.data_ptr<double>(),
                       alive.data_ptr<uint8_t>(), group_start.data_ptr<int64_t>(), G, params,
                       keep_pos.data_ptr<int64_t>(), kept.data_ptr<double>(), counts.data_ptr<int64_t>(),
                       at::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Slot q of group g holds a kept entry iff q - start(g) < counts[g].
  const at::Tensor group_of = at::repeat_interleave(at::arange(G, sizes.options()), sizes);
  const at::Tensor rank = at::arange(N, sizes.options()) - group_start.index_select(0, group_of);
  const at::Tensor mask = rank < counts.index_select(0, group_of);
  return {perm.index_select(0, keep_pos.masked_select(mask)), kept.masked_select(mask)};
}

// Not interruptible: the kernel runs to its end (cancel is not read).
std::tuple<at::Tensor, at::Tensor> batched_soft_nms_cuda(const at::Tensor& segments_in, const at::Tensor& scores_in,
                                                         const at::Tensor& groups, const NmsParams& params,
                                                         std::optional<int64_t> pre_nms_topk, const int32_t*) {
  const c10::cuda::CUDAGuard guard(segments_in.device());
  const at::Tensor segments = segments_in.to(at::kDouble);
  const at::Tensor scores = scores_in.to(at::kDouble);
  const int64_t N = segments.size(0);
  if (N == 0) return {at::empty({0}, groups.options()), at::empty({0}, scores.options())};
  if (!pre_nms_topk.has_value()) return soft_nms_groups(segments, scores, groups, params);
  // The k best of each group: order by score (descending), then group, both stable so
  // that ties stay in index order; then each member's rank within its group. (+ 0.0 turns
  // -0 into +0, which a radix sort would order apart; the CPU path compares values.)
  const at::Tensor by_score = std::get<1>((scores + 0.0).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor by_group =
      by_score.index_select(0, std::get<1>(groups.index_select(0, by_score).sort(true, 0, false)));
  const at::Tensor sizes = std::get<2>(at::unique_consecutive(groups.index_select(0, by_group), false, true));
  const at::Tensor first = sizes.cumsum(0) - sizes;
  const at::Tensor rank = at::arange(N, sizes.options()) - at::repeat_interleave(first, sizes);
  const at::Tensor members = std::get<0>(by_group.masked_select(rank < *pre_nms_topk).sort());  // index order
  const auto [keep, kept] = soft_nms_groups(segments.index_select(0, members), scores.index_select(0, members),
                                            groups.index_select(0, members), params);
  return {members.index_select(0, keep), kept};
}

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CUDA, m) { m.impl("batched_soft_nms", &checked_soft_nms<batched_soft_nms_cuda>); }

}  // namespace himnet_fast
