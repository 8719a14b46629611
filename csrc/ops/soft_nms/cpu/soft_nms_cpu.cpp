// CPU kernel of batched_soft_nms (and of the private O(n^2) _soft_nms_quadratic): groups
// the checked segments (soft_nms_op.h) and runs soft_nms in parallel over groups.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <tuple>
#include <vector>

#include "../soft_nms_op.h"

namespace himnet_fast {
namespace {

// kAuto: batched_soft_nms; kQuadratic: _soft_nms_quadratic.
template <SoftNmsAlgorithm algorithm>
std::tuple<at::Tensor, at::Tensor> soft_nms_cpu(const at::Tensor& segments, const at::Tensor& scores_in,
                                                const at::Tensor& groups_in, const NmsParams& params,
                                                std::optional<int64_t> pre_nms_topk, const int32_t* cancel) {
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
  visit_segments(segments, [&](const auto* base, int64_t s0, int64_t s1) {  // in place: no converted copy
    for (int64_t q = 0; q < N; ++q) {
      st[q] = static_cast<double>(base[perm[q] * s0]);
      en[q] = static_cast<double>(base[perm[q] * s0 + s1]);
      sv[q] = sc[perm[q]];
      if (q > 0 && grp[perm[q]] != grp[perm[q - 1]]) bounds.push_back(q);
    }
  });
  if (N > 0) bounds.push_back(N);
  const int64_t G = static_cast<int64_t>(bounds.size()) - 1;
  std::vector<int64_t> local(N), counts(std::max<int64_t>(G, 0));
  std::vector<double> kept(N);
  std::atomic<bool> cancelled{false};
  at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
    SoftNmsWorkspace ws;
    std::vector<int64_t> top;       // pre_nms_topk: the group's positions that take part, ascending
    std::vector<double> ts, te, tv;  // and their segments and scores
    for (int64_t g = begin; g < end; ++g) {
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
      const int64_t m = soft_nms(s, e, v, n, params, &local[b], &kept[b], ws, cancel, algorithm);
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
  m.impl("batched_soft_nms", &checked_soft_nms<soft_nms_cpu<SoftNmsAlgorithm::kAuto>>);
  m.impl("_soft_nms_quadratic", &checked_soft_nms<soft_nms_cpu<SoftNmsAlgorithm::kQuadratic>>);
}

}  // namespace himnet_fast
