// CUDA bindings of proposals and batched_soft_nms: checks and bookkeeping with
// ATen on the device (scans, grouping, compaction), kernels in postprocess_kernels.cu.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "../../../binding_utils.h"
#include "postprocess_kernels.h"

namespace himnet_fast {
namespace {

// Exclusive scan of a 1D int64 tensor.
at::Tensor exclusive_scan(const at::Tensor& counts) { return counts.cumsum(0) - counts; }

std::tuple<at::Tensor, at::Tensor> proposals_cuda(const at::Tensor& attention_in, const at::Tensor& cas_in,
                                                  const at::Tensor& offsets_in, const at::Tensor& selected_in,
                                                  const at::Tensor& video_scores_in,
                                                  const at::Tensor& thresholds_in, double weight) {
  const c10::cuda::CUDAGuard guard(attention_in.device());
  const ProposalInputs in = contiguous_proposal_inputs(attention_in, cas_in, offsets_in, selected_in,
                                                       video_scores_in, thresholds_in);
  const at::Tensor &attention = in.attention, &cas = in.cas, &offsets = in.offsets, &selected = in.selected;
  const at::Tensor &video_scores = in.video_scores, &thresholds = in.thresholds;
  const int64_t videos = in.videos, K = in.K, rows = in.rows, H = in.H;
  const at::Tensor lengths = offsets.slice(0, 1) - offsets.slice(0, 0, videos);
  TORCH_CHECK_VALUE(offsets[0].item<int64_t>() == 0 && offsets[videos].item<int64_t>() == attention.size(0),
                    "proposals: offsets must start at 0 and end at the packed length ", attention.size(0));
  TORCH_CHECK_VALUE(videos == 0 || lengths.min().item<int64_t>() >= 0, "proposals: offsets must be non-decreasing");
  if (rows > 0) {
    const at::Tensor v = selected.select(1, 0), c = selected.select(1, 1);
    TORCH_CHECK_VALUE(v.min().item<int64_t>() >= 0 && v.max().item<int64_t>() < videos,
                      "proposals: selected videos must lie in [0, ", videos, ")");
    TORCH_CHECK_VALUE(c.min().item<int64_t>() >= 0 && c.max().item<int64_t>() < K,
                      "proposals: selected classes must lie in [0, K=", K, ")");
  }
  TORCH_CHECK_VALUE(at::isfinite(thresholds).all().item<bool>(), "proposals: thresholds must be finite");
  TORCH_CHECK_VALUE(at::isfinite(attention).all().item<bool>() && at::isfinite(cas).all().item<bool>(),
                    "proposals: attention and cas must be finite (found NaN or infinity)");
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor prefix_len =
      rows > 0 ? lengths.index_select(0, selected.select(1, 0)) + 1 : at::zeros({0}, offsets.options());
  const at::Tensor prefix_start = exclusive_scan(prefix_len).contiguous();
  const int64_t prefix_total = rows > 0 ? prefix_len.sum().item<int64_t>() : 0;
  at::Tensor prefix = at::empty({prefix_total}, video_scores.options());
  at::Tensor counts = at::empty({rows * H}, offsets.options());
  at::Tensor ids, scores;
  AT_DISPATCH_FLOATING_TYPES(cas.scalar_type(), "proposals_cuda", [&] {
    const scalar_t* att = attention.data_ptr<scalar_t>();
    proposals_prefix_cuda(cas.data_ptr<scalar_t>(), K, offsets.data_ptr<int64_t>(),
                          selected.data_ptr<int64_t>(), rows, prefix_start.data_ptr<int64_t>(),
                          prefix.data_ptr<double>(), stream);
    proposals_runs_cuda(att, offsets.data_ptr<int64_t>(), selected.data_ptr<int64_t>(),
                        video_scores.data_ptr<double>(), rows, thresholds.data_ptr<double>(), H, nullptr,
                        nullptr, weight, counts.data_ptr<int64_t>(), nullptr, nullptr, nullptr, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const at::Tensor out_start = exclusive_scan(counts).contiguous();
    const int64_t total = rows * H > 0 ? counts.sum().item<int64_t>() : 0;
    ids = at::empty({total, 4}, offsets.options());
    scores = at::empty({total}, video_scores.options());
    proposals_runs_cuda(att, offsets.data_ptr<int64_t>(), selected.data_ptr<int64_t>(),
                        video_scores.data_ptr<double>(), rows, thresholds.data_ptr<double>(), H,
                        prefix.data_ptr<double>(), prefix_start.data_ptr<int64_t>(), weight, nullptr,
                        out_start.data_ptr<int64_t>(), ids.data_ptr<int64_t>(), scores.data_ptr<double>(),
                        stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {ids, scores};
}

std::tuple<at::Tensor, at::Tensor> batched_soft_nms_cuda(const at::Tensor& segments_in,
                                                         const at::Tensor& scores_in,
                                                         const at::Tensor& groups_in, int64_t method,
                                                         double sigma, double iou_threshold,
                                                         double min_score, double offset,
                                                         bool quadratic /*the kernel is quadratic*/,
                                                         std::optional<int64_t> pre_nms_topk,
                                                         const std::optional<at::Tensor>& cancel) {
  // Not interruptible: the kernel runs to its end (cancel is checked, not read).
  const NmsParams params = check_soft_nms_inputs(segments_in, scores_in, groups_in, method, sigma, iou_threshold,
                                                 min_score, offset, pre_nms_topk, cancel);
  const c10::cuda::CUDAGuard guard(segments_in.device());
  const at::Tensor segments = segments_in.to(at::kDouble);
  const at::Tensor scores = scores_in.to(at::kDouble);
  const int64_t N = segments.size(0);
  TORCH_CHECK_VALUE(at::isfinite(segments).all().item<bool>(), "batched_soft_nms: segments contain NaN or infinity");
  TORCH_CHECK_VALUE(at::isfinite(scores).all().item<bool>(), "batched_soft_nms: scores contain NaN or infinity");
  TORCH_CHECK_VALUE((segments.select(1, 1) >= segments.select(1, 0)).all().item<bool>(),
                    "batched_soft_nms: every segment must end at or after its start");
  TORCH_CHECK_VALUE(at::isfinite(segments.select(1, 1) - segments.select(1, 0)).all().item<bool>(),
                    "batched_soft_nms: segment lengths must be finite (end - start overflows)");
  const at::Tensor empty_long = at::empty({0}, groups_in.options());
  if (N == 0) return {empty_long, at::empty({0}, scores.options())};
  if (pre_nms_topk.has_value()) {
    // The k best of each group: order by score (descending), then group, both stable so
    // that ties stay in index order; then each member's rank within its group. (+ 0.0 turns
    // -0 into +0, which a radix sort would order apart; the CPU path compares values.)
    const at::Tensor by_score = std::get<1>((scores + 0.0).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
    const at::Tensor by_group =
        by_score.index_select(0, std::get<1>(groups_in.index_select(0, by_score).sort(true, 0, false)));
    const at::Tensor sizes = std::get<2>(at::unique_consecutive(groups_in.index_select(0, by_group), false, true));
    const at::Tensor first = sizes.cumsum(0) - sizes;
    const at::Tensor rank = at::arange(N, sizes.options()) - at::repeat_interleave(first, sizes);
    const at::Tensor members = std::get<0>(by_group.masked_select(rank < *pre_nms_topk).sort());  // index order
    const auto [keep, kept] =
        batched_soft_nms_cuda(segments.index_select(0, members), scores.index_select(0, members),
                              groups_in.index_select(0, members), method, sigma, iou_threshold, min_score, offset,
                              quadratic, std::nullopt, std::nullopt);
    return {members.index_select(0, keep), kept};
  }
  // Stable grouping keeps each group's segments in index order (the tie rule).
  const auto [sorted_groups, perm] = groups_in.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor sizes = std::get<2>(at::unique_consecutive(sorted_groups, false, true));
  const int64_t G = sizes.size(0);
  const at::Tensor group_start = at::cat({at::zeros({1}, sizes.options()), sizes.cumsum(0)}).contiguous();
  const at::Tensor starts = segments.select(1, 0).index_select(0, perm).contiguous();
  const at::Tensor ends = segments.select(1, 1).index_select(0, perm).contiguous();
  at::Tensor work = scores.index_select(0, perm).contiguous();
  at::Tensor alive = at::empty({N}, segments.options().dtype(at::kByte));
  at::Tensor keep_pos = at::empty({N}, groups_in.options());
  at::Tensor kept = at::empty({N}, scores.options());
  at::Tensor counts = at::empty({G}, groups_in.options());
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

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CUDA, m) {
  m.impl("proposals", &proposals_cuda);
  m.impl("batched_soft_nms", &batched_soft_nms_cuda);
}

}  // namespace himnet_fast
