// CPU (soft-)NMS algorithms of nms.h: the overlap sweep and the O(n^2) baseline.
#include <algorithm>
#include <numeric>

#include "../nms.h"

namespace himnet_fast {
namespace {

using Entry = NmsWorkspace::Entry;

// std heap order ("a has lower priority than b"): higher key first, then lower index.
struct EntryLess {
  const int64_t* order;
  bool operator()(const Entry& a, const Entry& b) const {
    if (a.key != b.key) return a.key < b.key;
    return order[a.pos] > order[b.pos];
  }
};

// Marks position q dead and removes its end from the max-end tree.
void kill(NmsWorkspace& ws, int64_t leaves, int64_t q) {
  ws.dead[q] = 1;
  int64_t node = leaves + q;
  ws.max_end[node] = -INFINITY;
  for (node >>= 1; node >= 1; node >>= 1) {
    const double v = std::max(ws.max_end[2 * node], ws.max_end[2 * node + 1]);
    if (ws.max_end[node] == v) break;  // ancestors unchanged
    ws.max_end[node] = v;
  }
}

// Alive positions r < limit with end[r] >= lo, in increasing order, into ws.hits.
void collect_overlaps(NmsWorkspace& ws, int64_t leaves, int64_t limit, double lo) {
  ws.hits.clear();
  if (limit <= 0) return;
  struct Frame {
    int64_t node, begin, size;
  };
  Frame stack[2 * 64];
  int depth = 0;
  stack[depth++] = {1, 0, leaves};
  while (depth > 0) {
    const Frame f = stack[--depth];
    if (f.begin >= limit || ws.max_end[f.node] < lo) continue;
    if (f.size == 1) {
      ws.hits.push_back(f.begin);
      continue;
    }
    const int64_t half = f.size / 2;
    stack[depth++] = {2 * f.node + 1, f.begin + half, half};
    stack[depth++] = {2 * f.node, f.begin, half};
  }
}

}  // namespace

int64_t soft_nms_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws) {
  if (n <= 0) return 0;
  ws.order.resize(n);
  std::iota(ws.order.begin(), ws.order.end(), int64_t{0});
  std::sort(ws.order.begin(), ws.order.end(), [&](int64_t a, int64_t b) {
    return starts[a] < starts[b] || (starts[a] == starts[b] && a < b);
  });
  ws.start.resize(n);
  ws.end.resize(n);
  ws.score.resize(n);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = ws.order[q];
    ws.start[q] = starts[i];
    ws.end[q] = ends[i];
    ws.score[q] = scores[i];
  }
  // With min_score > 0 a score below it never reaches min_score again (a decay keeps
  // a non-negative score non-negative and never raises it; a negative one stays <= 0),
  // so such segments can be dropped for good. With min_score <= 0 a negative score
  // may still rise above min_score and must stay alive.
  const bool prune = params.min_score > 0.0;
  int64_t leaves = 1;
  while (leaves < n) leaves <<= 1;
  ws.dead.assign(n, 0);
  ws.max_end.assign(2 * leaves, -INFINITY);
  ws.heap.clear();
  for (int64_t q = 0; q < n; ++q) {
    if (prune && ws.score[q] < params.min_score) {
      ws.dead[q] = 1;
      continue;
    }
    ws.max_end[leaves + q] = ws.end[q];
    ws.heap.push_back({ws.score[q], q});
  }
  for (int64_t node = leaves - 1; node >= 1; --node) {
    ws.max_end[node] = std::max(ws.max_end[2 * node], ws.max_end[2 * node + 1]);
  }
  const EntryLess less{ws.order.data()};
  std::make_heap(ws.heap.begin(), ws.heap.end(), less);

  const double offset = params.offset;
  int64_t kept = 0;
  while (!ws.heap.empty()) {
    std::pop_heap(ws.heap.begin(), ws.heap.end(), less);
    const Entry top = ws.heap.back();
    ws.heap.pop_back();
    const int64_t q = top.pos;
    if (ws.dead[q]) continue;
    const double current = ws.score[q];
    if (top.key > current) {  // decayed since pushed: re-queue with its current score
      ws.heap.push_back({current, q});
      std::push_heap(ws.heap.begin(), ws.heap.end(), less);
      continue;
    }
    if (top.key < current) continue;  // a raised score has its own, higher entry
    // Every alive segment has an entry ranked at or above its current (score, index),
    // so this one is the true maximum with the lowest index among ties.
    if (current < params.min_score) break;
    keep[kept] = ws.order[q];
    kept_scores[kept] = current;
    ++kept;
    kill(ws, leaves, q);
    const double s = ws.start[q], e = ws.end[q];
    // Superset of the segments with a positive computed intersection (see nms.h):
    // start <= e + offset and end >= s - offset (rounding is monotone).
    const int64_t limit =
        std::upper_bound(ws.start.begin(), ws.start.end(), e + offset) - ws.start.begin();
    collect_overlaps(ws, leaves, limit, s - offset);
    for (const int64_t r : ws.hits) {
      const double iou = segment_iou(s, e, ws.start[r], ws.end[r], offset);
      double updated = ws.score[r];
      if (!nms_pair_update(params, iou, &updated)) {
        kill(ws, leaves, r);
        continue;
      }
      if (updated > ws.score[r]) {  // a negative score raised by a decay
        ws.heap.push_back({updated, r});
        std::push_heap(ws.heap.begin(), ws.heap.end(), less);
      }
      ws.score[r] = updated;
      if (prune && updated < params.min_score) kill(ws, leaves, r);
    }
  }
  return kept;
}

int64_t soft_nms_quadratic(const double* starts, const double* ends, const double* scores,
                           int64_t n, const NmsParams& params, int64_t* keep, double* kept_scores) {
  if (n <= 0) return 0;
  std::vector<double> current(scores, scores + n);
  std::vector<uint8_t> alive(n, 1);
  int64_t kept = 0;
  while (true) {
    int64_t best = -1;
    for (int64_t j = 0; j < n; ++j) {
      if (alive[j] && (best < 0 || current[j] > current[best])) best = j;
    }
    if (best < 0 || current[best] < params.min_score) break;
    keep[kept] = best;
    kept_scores[kept] = current[best];
    ++kept;
    alive[best] = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (!alive[j]) continue;
      const double iou = segment_iou(starts[best], ends[best], starts[j], ends[j], params.offset);
      if (!nms_pair_update(params, iou, &current[j])) alive[j] = 0;
    }
  }
  return kept;
}

}  // namespace himnet_fast
