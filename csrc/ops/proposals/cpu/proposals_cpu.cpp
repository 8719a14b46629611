// CPU kernel of proposals on checked inputs (proposals_op.h): the shared routines of
// proposals.h in parallel over videos and rows.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <tuple>
#include <vector>

#include "../proposals.h"
#include "../proposals_op.h"

namespace himnet_fast {
namespace {

std::tuple<at::Tensor, at::Tensor> proposals_cpu(const ProposalInputs& in, double weight) {
  const at::Tensor &attention = in.attention, &cas = in.cas, &offsets = in.offsets;
  const int64_t videos = in.videos, K = in.K, rows = in.rows, H = in.H;
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t* sel = in.selected.data_ptr<int64_t>();
  const double* vs = in.video_scores.data_ptr<double>();
  const double* thr = in.thresholds.data_ptr<double>();
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

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CPU, m) { m.impl("proposals", &checked_proposals<proposals_cpu>); }

}  // namespace himnet_fast
