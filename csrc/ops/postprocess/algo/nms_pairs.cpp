// The pair-list (soft-)NMS of small problems (nms_internal.h): the IoU of two segments,
// hence their update factor, does not depend on the scores, so every overlapping pair
// is listed once, with its factor, before the selection loop; each selection then only
// walks the precomputed neighbours of the kept segment.
#include <algorithm>
#include <vector>

#include "nms_internal.h"

namespace himnet_fast {
namespace nms_detail {
namespace {

// Positions are local indices (so the tie rule is "first position"), keyed by blocks of
// kBlock: key[b] is an upper bound of block b's alive scores, exact (attained by
// holder[b]) unless dirty[b]. A decay lowers scores only (or raises a negative one), so
// lowering a block's holder just marks the block dirty; a dirty block is re-keyed when
// it reaches the top of the tournament tree over the keys. 64 positions per block
// measured fastest on the THUMOS14 proposals (16: 1.3x slower, 256: 1.2x).
constexpr int64_t kBlockBits = 6;
constexpr int64_t kBlock = int64_t{1} << kBlockBits;

struct BlockArgmax {
  double* score;   // leaves * kBlock entries, -inf when dead or padding
  double* key;     // per block (leaves)
  int64_t* holder;
  uint8_t* dirty;
  int64_t* winner;  // winner[v] = best block under tree node v (leaves at [leaves, 2 leaves))
  int64_t leaves;

  void build() {
    for (int64_t b = 0; b < leaves; ++b) {
      rekey(b);
      winner[leaves + b] = b;
    }
    for (int64_t v = leaves - 1; v >= 1; --v) winner[v] = play(winner[2 * v], winner[2 * v + 1]);
  }

  // Blocks on the left hold lower positions: the left one wins ties (the tie rule).
  int64_t play(int64_t left, int64_t right) const { return key[right] > key[left] ? right : left; }

  void replay(int64_t b) {
    for (int64_t v = (leaves + b) >> 1; v >= 1; v >>= 1) winner[v] = play(winner[2 * v], winner[2 * v + 1]);
  }

  void rekey(int64_t b) {
    const int64_t q = (b << kBlockBits) + first_argmax(score + (b << kBlockBits), kBlock);
    key[b] = score[q];
    holder[b] = q;
    dirty[b] = 0;
  }

  // First position holding the maximum alive score, or -1 when none is alive.
  int64_t top() {
    while (true) {
      const int64_t b = winner[1];
      if (key[b] == -INFINITY) return -1;
      if (!dirty[b]) return holder[b];
      rekey(b);
      replay(b);
    }
  }

  // Sets score[q] and keeps block q's key an upper bound (exact if it was).
  void set(int64_t q, double updated) {
    const double old = score[q];
    score[q] = updated;
    const int64_t b = q >> kBlockBits;
    if (updated < old) {
      dirty[b] |= static_cast<uint8_t>(holder[b] == q);
    } else if (updated > old) {  // a raised negative score: it may now lead its block
      if (updated > key[b]) {
        key[b] = updated;  // attained, so exact
        holder[b] = q;
        dirty[b] = 0;
        replay(b);
      } else if (updated == key[b] && q < holder[b]) {
        holder[b] = q;
      }
    }
  }
};

// out[i] = the gaussian decay factor of the pair ([s1, e1], [s2, e2])_i, or its IoU.
// Vectorized (contiguous planes); nms_pair_update's operations, so the same bits.
HF_SIMD_CLONES
void pair_factors(const double* s1, const double* e1, const double* s2, const double* e2, int64_t m,
                  double offset, double sigma, bool gaussian, double* out) {
  if (gaussian) {
    for (int64_t i = 0; i < m; ++i) {
      const double iou = segment_iou(s1[i], e1[i], s2[i], e2[i], offset);
      out[i] = decay_exp(-(iou * iou) / sigma);
    }
  } else {
    for (int64_t i = 0; i < m; ++i) out[i] = segment_iou(s1[i], e1[i], s2[i], e2[i], offset);
  }
}

// Lists the candidate pairs of the n segments, then keeps those that change a score as
// adjacency lists of both ends: the neighbours of local index i are adj[first[i] ..
// first[i + 1]) with factors adj_w (gaussian: the decay; linear: 1 - iou; hard: the
// IoU, above the threshold). False (nothing listed) above max_pairs candidates.
bool list_pairs(const double* starts, const double* ends, int64_t n, const NmsParams& params, int64_t max_pairs,
                NmsWorkspace& ws) {
  sort_by_start(starts, n, ws);
  ws.start.resize(n);
  ws.end.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    ws.start[k] = starts[ws.order[k]];
    ws.end[k] = ends[ws.order[k]];
  }
  // Candidates: k < j in start order with start_j <= end_k + offset, a superset of the
  // pairs with a positive computed intersection (see nms.h). stop[k] = the first j past them.
  const double* ss = ws.start.data();
  const double* se = ws.end.data();
  std::vector<int64_t>& stop = ws.hits;
  stop.resize(n);
  int64_t m = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double hi = se[k] + params.offset;
    int64_t j = k + 1;
    while (j < n && ss[j] <= hi) ++j;
    stop[k] = j;
    m += j - k - 1;
    if (m > max_pairs) return false;
  }
  std::vector<int32_t>& pa = ws.pair_a;
  std::vector<int32_t>& pb = ws.pair_b;
  pa.resize(m);
  pb.resize(m);
  ws.pair_geometry.resize(4 * m);
  double* s1 = ws.pair_geometry.data();
  double* e1 = s1 + m;
  double* s2 = e1 + m;
  double* e2 = s2 + m;
  for (int64_t k = 0, p = 0; k < n; ++k) {
    const int32_t i = static_cast<int32_t>(ws.order[k]);
    for (int64_t j = k + 1; j < stop[k]; ++j, ++p) {
      pa[p] = i;
      pb[p] = static_cast<int32_t>(ws.order[j]);
      s1[p] = ss[k];
      e1[p] = se[k];
      s2[p] = ss[j];
      e2[p] = se[j];
    }
  }
  std::vector<double>& w = ws.pair_w;
  w.resize(m);
  pair_factors(s1, e1, s2, e2, m, params.offset, params.sigma, params.method == kNmsGaussian, w.data());
  // Pairs that change nothing (factor 1; linear / hard: IoU not above the threshold) are dropped.
  const bool gaussian = params.method == kNmsGaussian, linear = params.method == kNmsLinear;
  int64_t used = 0;
  for (int64_t p = 0; p < m; ++p) {
    const double f = w[p];
    pa[used] = pa[p];
    pb[used] = pb[p];
    w[used] = linear ? 1.0 - f : f;
    used += gaussian ? f != 1.0 : f > params.iou_threshold;
  }
  std::vector<int64_t>& first = ws.adj_first;
  first.assign(n + 2, 0);
  for (int64_t p = 0; p < used; ++p) {
    ++first[pa[p] + 2];
    ++first[pb[p] + 2];
  }
  for (int64_t i = 0; i < n; ++i) first[i + 2] += first[i + 1];
  ws.adj.resize(2 * used);
  ws.adj_w.resize(2 * used);
  for (int64_t p = 0; p < used; ++p) {  // first[i + 1] runs from the start of i's list to its end
    const int64_t x = first[pa[p] + 1]++, y = first[pb[p] + 1]++;
    ws.adj[x] = pb[p];
    ws.adj_w[x] = w[p];
    ws.adj[y] = pa[p];
    ws.adj_w[y] = w[p];
  }
  return true;
}

HF_SIMD_CLONES
int64_t select_by_pairs(const double* scores, int64_t n, const NmsParams& params, int64_t* keep,
                        double* kept_scores, NmsWorkspace& ws) {
  const bool prune = params.min_score > 0.0;  // see soft_nms_sweep
  const bool hard = params.method == kNmsHard;
  BlockArgmax am;
  am.leaves = pow2_at_least((n + kBlock - 1) >> kBlockBits);
  ws.score.resize(am.leaves << kBlockBits);
  for (int64_t i = 0; i < n; ++i) ws.score[i] = prune && scores[i] < params.min_score ? -INFINITY : scores[i];
  std::fill(ws.score.begin() + n, ws.score.end(), -INFINITY);
  ws.key_score.resize(am.leaves);
  ws.key_index.resize(am.leaves);
  ws.dirty.resize(am.leaves);
  ws.winner.resize(2 * am.leaves);
  am.score = ws.score.data();
  am.key = ws.key_score.data();
  am.holder = ws.key_index.data();
  am.dirty = ws.dirty.data();
  am.winner = ws.winner.data();
  am.build();
  const int64_t* first = ws.adj_first.data();
  const int32_t* adj = ws.adj.data();
  const double* w = ws.adj_w.data();
  double* score = ws.score.data();
  int64_t kept = 0;
  while (true) {
    const int64_t q = am.top();
    if (q < 0) break;
    const double current = score[q];
    if (current < params.min_score) break;
    keep[kept] = q;
    kept_scores[kept] = current;
    ++kept;
    am.set(q, -INFINITY);
    for (int64_t p = first[q], last = first[q + 1]; p < last; ++p) {
      const int64_t r = adj[p];
      const double old = score[r];
      double updated = hard ? -INFINITY : old * w[p];
      updated = prune && updated < params.min_score ? -INFINITY : updated;
      updated = old == -INFINITY ? old : updated;  // the dead stay dead (-inf * 0 would be NaN)
      if (updated > old) {  // a raised negative score (rare)
        am.set(r, updated);
        continue;
      }
      // Branch-free am.set for the common case (lowered or unchanged; about half the
      // neighbours are already dead, an unpredictable branch).
      score[r] = updated;
      const int64_t b = r >> kBlockBits;
      am.dirty[b] |= static_cast<uint8_t>(static_cast<int>(updated < old) & static_cast<int>(am.holder[b] == r));
    }
  }
  return kept;
}

}  // namespace

int64_t soft_nms_pairs(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t max_pairs, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws) {
  if (n <= 0) return 0;
  if (n > INT32_MAX || !list_pairs(starts, ends, n, params, max_pairs, ws)) return -1;
  return select_by_pairs(scores, n, params, keep, kept_scores, ws);
}

}  // namespace nms_detail
}  // namespace himnet_fast
