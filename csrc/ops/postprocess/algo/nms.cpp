// CPU (soft-)NMS algorithms of nms.h: the overlap sweep and the O(n^2) baseline.
#include <algorithm>
#include <climits>
#include <numeric>

#include "../nms.h"

namespace himnet_fast {
namespace {

constexpr int64_t kBlockBits = 5;  // candidate scans go by blocks of 32 positions
constexpr int64_t kBlock = int64_t{1} << kBlockBits;
constexpr int64_t kKeyBits = 5;  // the lazy tournament keys blocks of 32 positions
constexpr int64_t kKey = int64_t{1} << kKeyBits;
constexpr int64_t kCompactMin = 1024;

// out[i] = decay_exp(-(iou_i^2) / sigma), iou_i = IoU of [s, e] and [hs[i], he[i]]:
// the gaussian rule of nms_pair_update, in a loop the compiler vectorizes (an AVX2
// clone where the CPU has it; the same IEEE operations, so the same bits).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
void gaussian_decays(const double* hs, const double* he, int64_t m, double s, double e, double offset,
                     double sigma, double* out) {
  for (int64_t i = 0; i < m; ++i) {
    const double iou = segment_iou(s, e, hs[i], he[i], offset);
    out[i] = decay_exp(-(iou * iou) / sigma);
  }
}

int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Positions are grouped in blocks of kBlock. Two trees over the blocks:
//  * block_end: max end of the alive segments of each block (exact), to find the
//    overlaps of a kept segment by scanning only blocks that may hold some;
//  * a lazy tournament over per-block keys (score, index, position of the block's
//    best alive segment). Decays only lower scores, so a key stays an upper bound
//    of its block after its segments decay: such blocks are just marked dirty and
//    re-scanned only if they reach the top. A clean top key is the true maximum.
//    A raised (negative) score refreshes its block at once.
struct Sweep {
  NmsWorkspace& ws;
  int64_t n, blocks, block_leaves, keys, key_leaves;
  int64_t dead = 0;  // dead positions among the n

  Sweep(NmsWorkspace& workspace, int64_t size) : ws(workspace) { resize(size); }

  void resize(int64_t size) {
    n = size;
    blocks = (n + kBlock - 1) / kBlock;
    keys = (n + kKey - 1) / kKey;
    block_leaves = pow2_at_least(blocks);
    key_leaves = pow2_at_least(keys);
    dead = 0;
    for (int64_t q = 0; q < n; ++q) dead += ws.end[q] == -INFINITY;
    build();
  }

  // Once a third of the positions are dead, drops them from the arrays (keeping the
  // (start, index) order) and rebuilds the trees: scans then skip fewer dead ones.
  // Small problems are left alone (a rebuild costs more than the scans it saves).
  void maybe_compact() {
    if (n < kCompactMin || 3 * dead <= n) return;
    int64_t w = 0;
    for (int64_t q = 0; q < n; ++q) {
      if (ws.end[q] == -INFINITY) continue;
      ws.order[w] = ws.order[q];
      ws.start[w] = ws.start[q];
      ws.end[w] = ws.end[q];
      ws.score[w] = ws.score[q];
      ++w;
    }
    resize(w);
  }

  // Block a ranks before block b (-1 = none): higher key score, then lower index.
  bool ahead(int64_t a, int64_t b) const {
    if (a < 0) return false;
    if (b < 0) return true;
    const double sa = ws.key_score[a], sb = ws.key_score[b];
    return sa > sb || (sa == sb && ws.key_index[a] < ws.key_index[b]);
  }

  void build() {
    ws.key_score.assign(keys, -INFINITY);
    ws.key_index.assign(keys, 0);
    ws.key_pos.assign(keys, 0);
    ws.dirty.assign(keys, 0);
    ws.winner.assign(2 * key_leaves, -1);
    for (int64_t b = 0; b < keys; ++b) {
      rekey(b);
      ws.winner[key_leaves + b] = b;
    }
    for (int64_t v = key_leaves - 1; v >= 1; --v) {
      ws.winner[v] = ahead(ws.winner[2 * v], ws.winner[2 * v + 1]) ? ws.winner[2 * v] : ws.winner[2 * v + 1];
    }
    ws.block_end.assign(2 * block_leaves, -INFINITY);
    for (int64_t b = 0; b < blocks; ++b) refresh_end(b, false);
    for (int64_t v = block_leaves - 1; v >= 1; --v) {
      ws.block_end[v] = std::max(ws.block_end[2 * v], ws.block_end[2 * v + 1]);
    }
  }

  // Exact key of key block b: its best alive position (score desc, index asc).
  // Dead positions score -inf; an all-dead block keys -inf.
  void rekey(int64_t b) {
    const int64_t first = b * kKey, last = std::min(n, first + kKey);
    const double* score = ws.score.data();
    const int64_t* order = ws.order.data();
    // Pass 1: the maximum score, in four independent lanes (vectorizes).
    double lane_max[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t q = first;
    for (; q + 4 <= last; q += 4) {
      for (int l = 0; l < 4; ++l) lane_max[l] = score[q + l] > lane_max[l] ? score[q + l] : lane_max[l];
    }
    for (; q < last; ++q) lane_max[0] = score[q] > lane_max[0] ? score[q] : lane_max[0];
    double top = lane_max[0];
    for (int l = 1; l < 4; ++l) top = lane_max[l] > top ? lane_max[l] : top;
    // Pass 2: the lowest index among the positions holding it (usually one).
    int64_t top_index = INT64_MAX, top_pos = first;
    for (q = first; q < last; ++q) {
      if (score[q] == top && order[q] < top_index) {
        top_index = order[q];
        top_pos = q;
      }
    }
    ws.key_score[b] = top;
    ws.key_index[b] = top_index;
    ws.key_pos[b] = top_pos;
    ws.dirty[b] = 0;
  }

  // Re-plays the tournament on the path of key block b.
  void replay(int64_t b) {
    for (int64_t v = (key_leaves + b) >> 1; v >= 1; v >>= 1) {
      ws.winner[v] = ahead(ws.winner[2 * v], ws.winner[2 * v + 1]) ? ws.winner[2 * v] : ws.winner[2 * v + 1];
    }
  }

  void refresh_end(int64_t b, bool propagate) {
    const int64_t first = b * kBlock, last = std::min(n, first + kBlock);
    double m = -INFINITY;
    for (int64_t q = first; q < last; ++q) m = std::max(m, ws.end[q]);
    int64_t v = block_leaves + b;
    ws.block_end[v] = m;
    if (!propagate) return;
    for (v >>= 1; v >= 1; v >>= 1) {
      const double up = std::max(ws.block_end[2 * v], ws.block_end[2 * v + 1]);
      if (ws.block_end[v] == up) break;  // ancestors unchanged
      ws.block_end[v] = up;
    }
  }

  // Position of the alive segment with the best (score, index), or -1 if none.
  int64_t top() {
    while (true) {
      const int64_t b = ws.winner[1];
      if (b < 0 || ws.key_score[b] == -INFINITY) return -1;  // dead positions score -inf
      if (!ws.dirty[b]) return ws.key_pos[b];
      rekey(b);
      replay(b);
    }
  }

  // Applies a new score to position q, keeping every block key an upper bound of
  // its block (and exact unless the block is dirty).
  void rescore(int64_t q, double updated) {
    const double old = ws.score[q];
    ws.score[q] = updated;
    const int64_t b = q >> kKeyBits;
    if (updated < old) {
      if (ws.key_pos[b] == q) ws.dirty[b] = 1;  // lowering another position leaves the key exact
    } else if (updated > old) {  // a raised negative score: it may now lead its block
      const int64_t i = ws.order[q];
      if (updated > ws.key_score[b] || (updated == ws.key_score[b] && i < ws.key_index[b])) {
        ws.key_score[b] = updated;  // attained by q, so an exact key if the block was clean
        ws.key_index[b] = i;
        ws.key_pos[b] = q;
        replay(b);
      }
    }
  }

  // Marks position q dead (score and end -inf).
  void kill(int64_t q) {
    ++dead;
    const double end = ws.end[q];
    ws.end[q] = -INFINITY;
    if (end == ws.block_end[block_leaves + (q >> kBlockBits)]) refresh_end(q >> kBlockBits, true);
    rescore(q, -INFINITY);
  }

  // Alive positions of block b below limit with end >= lo, appended to ws.hits.
  void scan_block(int64_t b, int64_t limit, double lo) {
    const int64_t q0 = b * kBlock, q1 = std::min(limit, q0 + kBlock);
    const size_t base = ws.hits.size();
    ws.hits.resize(base + (q1 - q0));
    int64_t* out = ws.hits.data() + base;
    int64_t m = 0;
    for (int64_t q = q0; q < q1; ++q) {  // branch-free filter
      out[m] = q;
      m += ws.end[q] >= lo;
    }
    ws.hits.resize(base + m);
  }

  // Alive positions q < limit with end[q] >= lo, increasing, into ws.hits.
  void collect(int64_t limit, double lo) {
    ws.hits.clear();
    if (limit <= 0) return;
    const int64_t last_block = (limit - 1) >> kBlockBits;
    if (blocks <= 16) {  // a small problem: check the blocks in a row
      for (int64_t b = 0; b <= last_block; ++b) {
        if (ws.block_end[block_leaves + b] >= lo) scan_block(b, limit, lo);
      }
      return;
    }
    int64_t stack[2 * 64];
    int depth = 0;
    stack[depth++] = 1;
    while (depth > 0) {
      const int64_t v = stack[--depth];
      if (ws.block_end[v] < lo) continue;
      int64_t first = v, span = 1;  // the blocks under node v: [first, first + span)
      while (first < block_leaves) {
        first <<= 1;
        span <<= 1;
      }
      first -= block_leaves;
      if (first > last_block) continue;
      if (span > 1) {
        stack[depth++] = 2 * v + 1;
        stack[depth++] = 2 * v;
        continue;
      }
      scan_block(first, limit, lo);
    }
  }
};

// ws.order = local indices sorted by (start, index). Snippet-like starts (integers in
// [0, 2^31), the proposals' case) sort as packed 64-bit keys, others as pairs.
void sort_by_start(const double* starts, int64_t n, NmsWorkspace& ws) {
  ws.order.resize(n);
  bool packed = n < (int64_t{1} << 31);
  for (int64_t i = 0; packed && i < n; ++i) {
    packed = starts[i] >= 0.0 && starts[i] < 2147483648.0 && starts[i] == static_cast<double>(static_cast<int64_t>(starts[i]));
  }
  if (packed) {
    std::vector<uint64_t>& keys = ws.packed;
    keys.resize(n);
    for (int64_t i = 0; i < n; ++i) keys[i] = static_cast<uint64_t>(starts[i]) << 32 | static_cast<uint64_t>(i);
    if (!std::is_sorted(keys.begin(), keys.end())) std::sort(keys.begin(), keys.end());
    for (int64_t q = 0; q < n; ++q) ws.order[q] = static_cast<int64_t>(keys[q] & 0xffffffffu);
    return;
  }
  std::vector<std::pair<double, int64_t>>& by_start = ws.by_start;
  by_start.resize(n);
  for (int64_t i = 0; i < n; ++i) by_start[i] = {starts[i], i};
  std::sort(by_start.begin(), by_start.end());  // (start, index): a strict total order
  for (int64_t q = 0; q < n; ++q) ws.order[q] = by_start[q].second;
}

}  // namespace

int64_t soft_nms_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws) {
  if (n <= 0) return 0;
  sort_by_start(starts, n, ws);
  ws.start.resize(n);
  ws.end.resize(n);
  ws.score.resize(n);
  // With min_score > 0 a score below it never reaches min_score again (a decay keeps
  // a non-negative score non-negative and never raises it; a negative one stays <= 0),
  // so such segments can be dropped for good. With min_score <= 0 a negative score
  // may still rise above min_score and must stay alive.
  const bool prune = params.min_score > 0.0;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = ws.order[q];
    const bool dead = prune && scores[i] < params.min_score;
    ws.start[q] = starts[i];
    ws.end[q] = dead ? -INFINITY : ends[i];
    ws.score[q] = dead ? -INFINITY : scores[i];
  }
  Sweep sw(ws, n);

  const double offset = params.offset;
  int64_t kept = 0;
  while (true) {
    const int64_t q = sw.top();
    if (q < 0) break;
    const double current = ws.score[q];
    if (current < params.min_score) break;
    keep[kept] = ws.order[q];
    kept_scores[kept] = current;
    ++kept;
    const double s = ws.start[q], e = ws.end[q];
    sw.kill(q);
    // Superset of the segments with a positive computed intersection (see nms.h):
    // start <= e + offset and end >= s - offset (rounding is monotone).
    const int64_t limit =
        std::upper_bound(ws.start.data(), ws.start.data() + sw.n, e + offset) - ws.start.data();
    sw.collect(limit, s - offset);
    const std::vector<int64_t>& hits = ws.hits;
    const int64_t m = static_cast<int64_t>(hits.size());
    if (params.method == kNmsGaussian) {
      // Same bits as nms_pair_update (decay_exp(-0) = 1), in vectorizable passes.
      ws.decay.resize(3 * m);
      double* hs = ws.decay.data() + m;
      double* he = hs + m;
      for (int64_t i = 0; i < m; ++i) {
        hs[i] = ws.start[hits[i]];
        he[i] = ws.end[hits[i]];
      }
      const double* d = ws.decay.data();
      gaussian_decays(hs, he, m, s, e, offset, params.sigma, ws.decay.data());
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = hits[i];
        const double updated = ws.score[r] * d[i];
        if (prune && updated < params.min_score) {
          sw.kill(r);
        } else {
          sw.rescore(r, updated);
        }
      }
    } else {
      for (const int64_t r : hits) {
        const double iou = segment_iou(s, e, ws.start[r], ws.end[r], offset);
        double updated = ws.score[r];
        if (!nms_pair_update(params, iou, &updated) || (prune && updated < params.min_score)) {
          sw.kill(r);
        } else {
          sw.rescore(r, updated);
        }
      }
    }
    sw.maybe_compact();
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
