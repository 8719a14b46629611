// CPU bindings of proposals and batched_soft_nms: unpack tensors, check values,
// run the shared algorithms of proposals.h / nms.h in parallel over rows / groups.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <numeric>
#include <tuple>
#include <vector>

#include "../../../binding_utils.h"
#include "../nms.h"
#include "../proposal_levels.h"
#include "../proposals.h"
#include "../video_scores.h"

namespace himnet_fast {
namespace {

// Checks offsets (0 = o_0 <= ... <= o_V = sum T) and the selected rows' ranges.
void check_proposal_values(const int64_t* off, int64_t videos, int64_t total, const int64_t* sel,
                           int64_t rows, int64_t K, const double* thr, int64_t H) {
  TORCH_CHECK_VALUE(off[0] == 0 && off[videos] == total,
                    "proposals: offsets must start at 0 and end at the packed length ", total);
  for (int64_t v = 0; v < videos; ++v) {
    TORCH_CHECK_VALUE(off[v] <= off[v + 1], "proposals: offsets must be non-decreasing (at ", v, ")");
  }
  for (int64_t r = 0; r < rows; ++r) {
    TORCH_CHECK_VALUE(sel[2 * r] >= 0 && sel[2 * r] < videos, "proposals: selected[", r,
                      "] names video ", sel[2 * r], " outside [0, ", videos, ")");
    TORCH_CHECK_VALUE(sel[2 * r + 1] >= 0 && sel[2 * r + 1] < K, "proposals: selected[", r,
                      "] names class ", sel[2 * r + 1], " outside [0, K=", K, ")");
  }
  for (int64_t h = 0; h < H; ++h) {
    TORCH_CHECK_VALUE(std::isfinite(thr[h]), "proposals: thresholds must be finite");
  }
}

std::tuple<at::Tensor, at::Tensor> proposals_cpu(const at::Tensor& attention_in, const at::Tensor& cas_in,
                                                 const at::Tensor& offsets_in, const at::Tensor& selected_in,
                                                 const at::Tensor& video_scores_in,
                                                 const at::Tensor& thresholds_in, double weight) {
  const ProposalInputs in = contiguous_proposal_inputs(attention_in, cas_in, offsets_in, selected_in,
                                                       video_scores_in, thresholds_in);
  const at::Tensor &attention = in.attention, &cas = in.cas, &offsets = in.offsets;
  const int64_t videos = in.videos, K = in.K, rows = in.rows, H = in.H;
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t* sel = in.selected.data_ptr<int64_t>();
  const double* vs = in.video_scores.data_ptr<double>();
  const double* thr = in.thresholds.data_ptr<double>();
  check_proposal_values(off, videos, attention.size(0), sel, rows, K, thr, H);

  // Pass 1, per video named by some row: the runs of every threshold, once (rows of
  // the same video share them). Pass 2, per row: the prefix sums of its class, then the
  // proposals and their OIC scores (proposals.h), written at the row's offsets.
  std::vector<uint8_t> used(videos, 0);
  for (int64_t r = 0; r < rows; ++r) used[sel[2 * r]] = 1;
  // Thresholds in ascending order (stable): a snippet is above thresholds [0, level) of
  // that order, so the runs of all thresholds come from one pass over the levels.
  std::vector<int64_t> by_value(H);
  std::iota(by_value.begin(), by_value.end(), int64_t{0});
  std::stable_sort(by_value.begin(), by_value.end(), [&](int64_t a, int64_t b) { return thr[a] < thr[b]; });
  std::vector<double> ascending(H);
  std::vector<int64_t> rank(H);  // position of threshold h in that order
  for (int64_t i = 0; i < H; ++i) {
    ascending[i] = thr[by_value[i]];
    rank[by_value[i]] = i;
  }
  std::vector<std::vector<int64_t>> runs(videos);  // (start, end) pairs, threshold by threshold
  std::vector<int64_t> run_count(videos * H, 0);   // runs of (video, threshold)
  std::vector<int64_t> start(rows * H + 1, 0);     // counts, then their exclusive scan
  at::Tensor ids, scores;
  AT_DISPATCH_FLOATING_TYPES(cas.scalar_type(), "proposals_cpu", [&] {
    const scalar_t* att = attention.data_ptr<scalar_t>();
    const scalar_t* x = cas.data_ptr<scalar_t>();
    TORCH_CHECK_VALUE(all_finite(att, attention.numel()) && all_finite(x, cas.numel()),
                      "proposals: attention and cas must be finite (found NaN or infinity)");
    at::parallel_for(0, videos, 8, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> level;
      std::vector<int64_t> open(H);
      std::vector<std::vector<int64_t>> by_rank(H);  // runs of the i-th smallest threshold
      for (int64_t v = begin; v < end; ++v) {
        if (!used[v]) continue;
        const scalar_t* a = att + off[v];
        const int64_t T = off[v + 1] - off[v];
        level.resize(T);
        threshold_levels(a, T, ascending.data(), H, level.data());
        for (auto& list : by_rank) list.clear();
        for_each_level_run(level.data(), T, open.data(),
                           [&](int64_t i, int64_t s, int64_t e) { by_rank[i].insert(by_rank[i].end(), {s, e}); });
        std::vector<int64_t>& out = runs[v];
        for (int64_t h = 0; h < H; ++h) {
          const std::vector<int64_t>& list = by_rank[rank[h]];
          out.insert(out.end(), list.begin(), list.end());
          run_count[v * H + h] = static_cast<int64_t>(list.size()) / 2;
        }
      }
    });
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t h = 0; h < H; ++h) start[r * H + h + 1] = run_count[sel[2 * r] * H + h];
    }
    std::partial_sum(start.begin(), start.end(), start.begin());
    ids = at::empty({start.back(), 4}, offsets.options());
    scores = at::empty({start.back()}, in.video_scores.options());
    int64_t* out_ids = ids.data_ptr<int64_t>();
    double* out_scores = scores.data_ptr<double>();
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      std::vector<double> prefix;
      for (int64_t r = begin; r < end; ++r) {
        const int64_t v = sel[2 * r], c = sel[2 * r + 1], T = off[v + 1] - off[v];
        prefix.resize(T + 1);
        column_prefix_sums(x + off[v] * K + c, K, T, prefix.data());
        const int64_t* run = runs[v].data();
        int64_t* o_ids = out_ids + 4 * start[r * H];
        double* o_scores = out_scores + start[r * H];
        const int64_t total = start[(r + 1) * H] - start[r * H];  // all thresholds, in order
        for (int64_t i = 0; i < total; ++i) {
          const int64_t s = run[2 * i], e = run[2 * i + 1];
          o_ids[4 * i] = v;
          o_ids[4 * i + 1] = c;
          o_ids[4 * i + 2] = s;
          o_ids[4 * i + 3] = e;
          o_scores[i] = oic_score(prefix.data(), T, s, e, weight, vs[r]);
        }
      }
    });
  });
  return {ids, scores};
}

at::Tensor video_scores_cpu(const at::Tensor& cas_in, const at::Tensor& offsets_in, int64_t r) {
  TORCH_CHECK_VALUE(cas_in.dim() == 2 && cas_in.size(1) >= 2 &&
                        (cas_in.scalar_type() == at::kFloat || cas_in.scalar_type() == at::kDouble),
                    "video_scores: cas must be (S, K >= 2) float32 or float64, got ", cas_in.sizes());
  TORCH_CHECK_VALUE(offsets_in.dim() == 1 && offsets_in.size(0) >= 1 && offsets_in.scalar_type() == at::kLong,
                    "video_scores: offsets must be 1D int64 (V+1,)");
  TORCH_CHECK_VALUE(r >= 1, "video_scores: r must be >= 1, got ", r);
  const at::Tensor cas = cas_in.contiguous(), offsets = offsets_in.contiguous();
  const int64_t videos = offsets.size(0) - 1, K = cas.size(1);
  const int64_t* off = offsets.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(off[0] == 0 && off[videos] == cas.size(0),
                    "video_scores: offsets must start at 0 and end at the packed length ", cas.size(0));
  for (int64_t v = 0; v < videos; ++v) {
    TORCH_CHECK_VALUE(off[v + 1] > off[v], "video_scores: every video needs T >= 1 (video ", v, ")");
  }
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

std::tuple<at::Tensor, at::Tensor> batched_soft_nms_cpu(const at::Tensor& segments_in,
                                                        const at::Tensor& scores_in,
                                                        const at::Tensor& groups_in, int64_t method,
                                                        double sigma, double iou_threshold,
                                                        double min_score, double offset, bool quadratic,
                                                        std::optional<int64_t> pre_nms_topk,
                                                        const std::optional<at::Tensor>& cancel_in) {
  const NmsParams params = check_soft_nms_inputs(segments_in, scores_in, groups_in, method, sigma, iou_threshold,
                                                 min_score, offset, pre_nms_topk, cancel_in);
  const int32_t* cancel = cancel_in.has_value() ? cancel_in->data_ptr<int32_t>() : nullptr;
  // Segments are read in place, as double, from float32 / float64 / int64 (the
  // proposals' snippet indices) with any strides: no converted copy.
  const at::ScalarType seg_type = segments_in.scalar_type();
  const at::Tensor segments =
      seg_type == at::kLong || seg_type == at::kFloat || seg_type == at::kDouble ? segments_in
                                                                                 : segments_in.to(at::kDouble);
  const at::Tensor scores = scores_in.to(at::kDouble).contiguous();
  const at::Tensor groups = groups_in.contiguous();
  const int64_t N = segments.size(0);
  const double* sc = scores.data_ptr<double>();
  const int64_t* grp = groups.data_ptr<int64_t>();
  // Stable grouping keeps each group's segments in index order (the tie rule).
  std::vector<int64_t> perm(N);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  if (!std::is_sorted(grp, grp + N)) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return grp[a] < grp[b]; });
  }
  std::vector<double> st(N), en(N), sv(N);
  std::vector<int64_t> bounds = {0};
  const auto gather = [&](const auto* base) {
    const int64_t s0 = segments.stride(0), s1 = segments.stride(1);
    for (int64_t i = 0; i < N; ++i) {
      const double a = static_cast<double>(base[i * s0]), b = static_cast<double>(base[i * s0 + s1]);
      TORCH_CHECK_VALUE(std::isfinite(a) && std::isfinite(b),
                        "batched_soft_nms: segments contain NaN or infinity (segments[", i, "])");
      TORCH_CHECK_VALUE(b >= a, "batched_soft_nms: every segment must end at or after its start (segments[", i,
                        "])");
      TORCH_CHECK_VALUE(std::isfinite(b - a), "batched_soft_nms: segment lengths must be finite (end - start "
                        "overflows at segments[", i, "])");
      TORCH_CHECK_VALUE(std::isfinite(sc[i]), "batched_soft_nms: scores contain NaN or infinity (scores[", i, "])");
    }
    for (int64_t q = 0; q < N; ++q) {
      st[q] = static_cast<double>(base[perm[q] * s0]);
      en[q] = static_cast<double>(base[perm[q] * s0 + s1]);
      sv[q] = sc[perm[q]];
      if (q > 0 && grp[perm[q]] != grp[perm[q - 1]]) bounds.push_back(q);
    }
  };
  if (segments.scalar_type() == at::kLong) {
    gather(segments.data_ptr<int64_t>());
  } else if (segments.scalar_type() == at::kFloat) {
    gather(segments.data_ptr<float>());
  } else {
    gather(segments.data_ptr<double>());
  }
  if (N > 0) bounds.push_back(N);
  const int64_t G = static_cast<int64_t>(bounds.size()) - 1;
  std::vector<int64_t> local(N), counts(std::max<int64_t>(G, 0));
  std::vector<double> kept(N);
  std::atomic<bool> cancelled{false};
  at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
    NmsWorkspace ws;
    std::vector<int64_t> top;       // pre_nms_topk: the group's positions that take part, ascending
    std::vector<double> ts, te, tv;  // and their segments and scores
    for (int64_t g = begin; g < end; ++g) {
      if (nms_cancel_requested(cancel)) {  // between groups too: the pair lists of small ones do not poll
        cancelled = true;
        break;
      }
      const int64_t b = bounds[g];
      int64_t n = bounds[g + 1] - b;
      const double *s = &st[b], *e = &en[b], *v = &sv[b];
      const bool cut = pre_nms_topk.has_value() && n > *pre_nms_topk;
      if (cut) {
        // The k best by score, ties to the lower position (positions follow the input
        // index within a group), kept in position order so that the NMS tie rule holds.
        n = *pre_nms_topk;
        top.resize(bounds[g + 1] - b);
        std::iota(top.begin(), top.end(), int64_t{0});
        std::nth_element(top.begin(), top.begin() + n, top.end(),
                         [&](int64_t x, int64_t y) { return v[x] > v[y] || (v[x] == v[y] && x < y); });
        top.resize(n);
        std::sort(top.begin(), top.end());
        ts.resize(n);
        te.resize(n);
        tv.resize(n);
        for (int64_t j = 0; j < n; ++j) {
          ts[j] = s[top[j]];
          te[j] = e[top[j]];
          tv[j] = v[top[j]];
        }
        s = ts.data();
        e = te.data();
        v = tv.data();
      }
      const int64_t m = quadratic ? soft_nms_quadratic(s, e, v, n, params, &local[b], &kept[b], cancel)
                                  : soft_nms_sweep(s, e, v, n, params, &local[b], &kept[b], ws, cancel);
      if (m == kNmsCancelled) {
        cancelled = true;
        break;
      }
      for (int64_t j = 0; cut && j < m; ++j) local[b + j] = top[local[b + j]];
      counts[g] = m;
    }
  });
  TORCH_CHECK(!cancelled, "batched_soft_nms: cancelled (the cancel flag was set)");
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  at::Tensor keep = at::empty({total}, groups.options());
  at::Tensor kept_scores = at::empty({total}, scores.options());
  int64_t* k = keep.data_ptr<int64_t>();
  double* ks = kept_scores.data_ptr<double>();
  for (int64_t g = 0, w = 0; g < G; ++g) {
    for (int64_t j = 0; j < counts[g]; ++j, ++w) {
      const int64_t b = bounds[g];
      k[w] = perm[b + local[b + j]];
      ks[w] = kept[b + j];
    }
  }
  return {keep, kept_scores};
}

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CPU, m) {
  m.impl("proposals", &proposals_cpu);
  m.impl("video_scores", &video_scores_cpu);
  m.impl("batched_soft_nms", &batched_soft_nms_cpu);
}

}  // namespace himnet_fast
