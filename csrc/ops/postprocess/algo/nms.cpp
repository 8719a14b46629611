// CPU (soft-)NMS algorithms of nms.h: the overlap sweep (per overlap, or by length
// buckets for large gaussian problems), the dispatch to the pair lists of small
// problems (nms_pairs.cpp) and the O(n^2) baseline.
#include <algorithm>
#include <climits>
#include <numeric>

#include "nms_internal.h"

namespace himnet_fast {
namespace nms_detail {
namespace {

constexpr int64_t kBlockBits = 6;  // candidate scans go by blocks of 64 positions
constexpr int64_t kBlock = int64_t{1} << kBlockBits;
constexpr int64_t kKeyBits = 6;  // the lazy tournament keys blocks of 64 positions
constexpr int64_t kKey = int64_t{1} << kKeyBits;
constexpr int64_t kCompactMin = 1024;
// Problems below kPairListMaxSize segments, with at most kPairListMaxPairs candidate
// pairs per segment, take the pair lists (nms_pairs.cpp): 1.27x faster than the
// per-overlap sweep below on the THUMOS14 test set's proposals (233 groups, about 4
// pairs per segment: 5.4 vs 6.9 ms on one core).
constexpr int64_t kPairListMaxSize = 2048;
constexpr int64_t kPairListMaxPairs = 64;

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

// score[j] *= decay_exp(-(iou_j^2) / sigma) for j < m, iou_j = IoU of [s, e] and
// [hs[j], he[j]] (0 for dead positions, whose end is -inf: their factor is exactly 1,
// as for every non-overlapping one, so x * 1 leaves their bits unchanged). Returns
// whether some score rose (a negative one; only tracked with kTrackRaise). The
// gaussian rule of nms_pair_update, branch-free so that it vectorizes.
template <bool kTrackRaise>
inline bool gaussian_decay_block(const double* hs, const double* he, double* score, int64_t m, double s,
                                 double e, double offset, double sigma) {
  int raised = 0;
  for (int64_t j = 0; j < m; ++j) {
    const double iou = segment_iou(s, e, hs[j], he[j], offset);
    const double old = score[j];
    const double updated = old * decay_exp(-(iou * iou) / sigma);
    score[j] = updated;
    if (kTrackRaise) raised |= updated > old;
  }
  return raised != 0;
}

// First position q < n with x < start[q] (n if none): std::upper_bound without
// data-dependent branches.
inline int64_t upper_bound_position(const double* start, int64_t n, double x) {
  const double* base = start;
  int64_t len = n;
  while (len > 1) {
    const int64_t half = len >> 1;
    base = base[half - 1] <= x ? base + half : base;
    len -= half;
  }
  return (base - start) + (len == 1 && base[0] <= x);
}

// upper_bound_position of x over positions [from, n), galloping from `from` (the
// answer is usually a few positions on): O(log(answer - from)) probes.
inline int64_t gallop_upper_bound(const double* start, int64_t from, int64_t n, double x) {
  int64_t lo = from, step = 1;
  while (true) {
    const int64_t probe = lo + step - 1;
    if (probe >= n) return lo + upper_bound_position(start + lo, n - lo, x);
    if (start[probe] > x) return lo + upper_bound_position(start + lo, probe - lo, x);
    lo = probe + 1;
    step <<= 1;
  }
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
  bool track_ends;   // keep the block_end tree (the bucketed sweep needs none)

  Sweep(NmsWorkspace& workspace, int64_t size, bool ends = true) : ws(workspace), track_ends(ends) {
    resize(size);
  }

  void resize(int64_t size) {
    n = size;
    blocks = (n + kBlock - 1) / kBlock;
    keys = (n + kKey - 1) / kKey;
    block_leaves = pow2_at_least(blocks);
    key_leaves = pow2_at_least(keys);
    // Scores padded with -inf to whole key blocks (rekey scans whole vectors).
    ws.score.resize(keys * kKey);
    std::fill(ws.score.begin() + n, ws.score.end(), -INFINITY);
    // Starts and ends readable up to there too (the bucketed sweep reads whole vectors).
    if (static_cast<int64_t>(ws.start.size()) < keys * kKey) {
      ws.start.resize(keys * kKey, INFINITY);
      ws.end.resize(keys * kKey, INFINITY);
    }
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

  // Block a ranks before block b: higher key score, then lower index (branch-free).
  bool ahead(int64_t a, int64_t b) const {
    const double sa = ws.key_score[a], sb = ws.key_score[b];
    return (static_cast<int>(sa > sb) | (static_cast<int>(sa == sb) & static_cast<int>(ws.key_index[a] < ws.key_index[b]))) != 0;
  }

  // Key blocks [0, keys) and a sentinel block `keys` (score -inf, last index) that
  // fills the tournament's unused leaves.
  void build() {
    ws.key_score.assign(keys + 1, -INFINITY);
    ws.key_index.assign(keys + 1, INT64_MAX);
    ws.key_pos.assign(keys + 1, 0);
    ws.dirty.assign(keys + 1, 0);
    ws.winner.assign(2 * key_leaves, keys);
    for (int64_t b = 0; b < keys; ++b) {
      rekey(b);
      ws.winner[key_leaves + b] = b;
    }
    for (int64_t v = key_leaves - 1; v >= 1; --v) {
      ws.winner[v] = ahead(ws.winner[2 * v], ws.winner[2 * v + 1]) ? ws.winner[2 * v] : ws.winner[2 * v + 1];
    }
    if (!track_ends) return;
    ws.block_end.assign(2 * block_leaves, -INFINITY);
    for (int64_t b = 0; b < blocks; ++b) refresh_end(b, false);
    for (int64_t v = block_leaves - 1; v >= 1; --v) {
      ws.block_end[v] = std::max(ws.block_end[2 * v], ws.block_end[2 * v + 1]);
    }
  }

  // Exact key of key block b: its best alive position (score desc, index asc).
  // Dead positions score -inf; an all-dead block keys -inf.
  void rekey(int64_t b) {
    const int64_t first = b * kKey;
    const double* score = ws.score.data() + first;
    const int64_t* order = ws.order.data() + first;
    // The first position of the maximum (vectorized, over the padded block); ties
    // between positions (rare) go to the lowest index by a second pass.
    int64_t at = first_argmax(score, kKey);
    const double top = score[at];
    int64_t equal = 0;
    for (int64_t q = 0; q < kKey; ++q) equal += score[q] == top;
    if (equal > 1 && top != -INFINITY) {
      for (int64_t q = at + 1; q < kKey; ++q) at = score[q] == top && order[q] < order[at] ? q : at;
    }
    ws.key_score[b] = top;
    ws.key_index[b] = top == -INFINITY ? INT64_MAX : order[at];
    ws.key_pos[b] = first + at;
    ws.dirty[b] = 0;
  }

  // Restores the key invariant of key block b after decays that lowered some of its
  // scores and, if `raised`, raised others: a raised score may now lead the block
  // (re-keyed at once); a lowered best position makes the block dirty.
  void after_decay(int64_t b, bool raised) {
    if (raised) {
      rekey(b);
      replay(b);
    } else if (ws.score[ws.key_pos[b]] != ws.key_score[b]) {
      ws.dirty[b] = 1;
    }
  }

  // Re-plays the tournament on the path of key block b. The path's winner travels in
  // registers, so the siblings' loads do not wait on the level below (2 % faster at 10k).
  void replay(int64_t b) {
    const double* key = ws.key_score.data();
    const int64_t* index = ws.key_index.data();
    int64_t* winner = ws.winner.data();
    int64_t best = b;
    double best_key = key[b];
    int64_t best_index = index[b];
    for (int64_t node = key_leaves + b; node > 1; node >>= 1) {
      const int64_t other = winner[node ^ 1];
      const double other_key = key[other];
      const int64_t other_index = index[other];
      const int wins = static_cast<int>(other_key > best_key) |
                       (static_cast<int>(other_key == best_key) & static_cast<int>(other_index < best_index));
      best = wins ? other : best;
      best_key = wins ? other_key : best_key;
      best_index = wins ? other_index : best_index;
      winner[node >> 1] = best;
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
      if (ws.key_score[b] == -INFINITY) return -1;  // dead positions score -inf
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
    if (track_ends && end == ws.block_end[block_leaves + (q >> kBlockBits)]) refresh_end(q >> kBlockBits, true);
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

}  // namespace

// Snippet-like starts (integers in [0, 2^31), the proposals' case) sort by counting
// when their range is at most 4n + 256 values, else as packed 64-bit keys; others by
// an LSD radix sort.
void sort_by_start(const double* starts, int64_t n, NmsWorkspace& ws) {
  ws.order.resize(n);
  bool packed = n < (int64_t{1} << 31);
  for (int64_t i = 0; packed && i < n; ++i) {
    packed = starts[i] >= 0.0 && starts[i] < 2147483648.0 && starts[i] == static_cast<double>(static_cast<int64_t>(starts[i]));
  }
  double lowest = n > 0 ? starts[0] : 0.0, highest = lowest;
  for (int64_t i = 0; packed && i < n; ++i) {
    lowest = std::min(lowest, starts[i]);
    highest = std::max(highest, starts[i]);
  }
  if (packed && highest - lowest <= static_cast<double>(4 * n + 256)) {  // stable counting sort
    const int64_t base = static_cast<int64_t>(lowest), range = static_cast<int64_t>(highest) - base + 1;
    std::vector<int64_t>& count = ws.hits;
    count.assign(range + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++count[static_cast<int64_t>(starts[i]) - base + 1];
    for (int64_t v = 0; v < range; ++v) count[v + 1] += count[v];
    for (int64_t i = 0; i < n; ++i) ws.order[count[static_cast<int64_t>(starts[i]) - base]++] = i;
    return;
  }
  if (packed) {
    std::vector<uint64_t>& keys = ws.packed;
    keys.resize(n);
    for (int64_t i = 0; i < n; ++i) keys[i] = static_cast<uint64_t>(starts[i]) << 32 | static_cast<uint64_t>(i);
    if (!std::is_sorted(keys.begin(), keys.end())) std::sort(keys.begin(), keys.end());
    for (int64_t q = 0; q < n; ++q) ws.order[q] = static_cast<int64_t>(keys[q] & 0xffffffffu);
    return;
  }
  // Otherwise an LSD radix sort (stable, so equal starts keep index order) of the
  // starts' order-preserving bit patterns (-0 taken as +0), 11 bits per pass; passes
  // whose digit is the same for every key are skipped.
  constexpr int kDigitBits = 11, kPasses = 6;
  constexpr uint64_t kDigitMask = (uint64_t{1} << kDigitBits) - 1;
  std::vector<uint64_t>& key = ws.packed;
  key.resize(2 * n);
  uint64_t* a = key.data();
  uint64_t* b = a + n;
  std::vector<int64_t>& index = ws.hits;
  index.resize(2 * n);
  int64_t* ia = index.data();
  int64_t* ib = ia + n;
  std::vector<int64_t> count(static_cast<size_t>(kPasses) << kDigitBits, 0);
  for (int64_t i = 0; i < n; ++i) {
    const double x = starts[i] + 0.0;  // -0 -> +0
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    bits = bits >> 63 ? ~bits : bits | (uint64_t{1} << 63);  // order-preserving
    a[i] = bits;
    ia[i] = i;
    for (int pass = 0; pass < kPasses; ++pass) ++count[(pass << kDigitBits) + ((bits >> (pass * kDigitBits)) & kDigitMask)];
  }
  for (int pass = 0; pass < kPasses; ++pass) {
    int64_t* c = count.data() + (pass << kDigitBits);
    const uint64_t digit0 = (a[0] >> (pass * kDigitBits)) & kDigitMask;
    if (c[digit0] == n) continue;  // one digit value: nothing to do
    int64_t total = 0;
    for (uint64_t d = 0; d <= kDigitMask; ++d) {
      const int64_t here = c[d];
      c[d] = total;
      total += here;
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t to = c[(a[i] >> (pass * kDigitBits)) & kDigitMask]++;
      b[to] = a[i];
      ib[to] = ia[i];
    }
    std::swap(a, b);
    std::swap(ia, ib);
  }
  std::copy(ia, ia + n, ws.order.begin());
}

namespace {

// The selection loop of soft_nms_sweep (an AVX-512 / AVX2 clone where the CPU has one:
// the same IEEE operations, so the same bits).
HF_SIMD_CLONES
int64_t sweep_loop(Sweep& sw, NmsWorkspace& ws, const NmsParams& params, bool prune, int64_t* keep,
                   double* kept_scores, const int32_t* cancel) {
  const double offset = params.offset;
  int64_t kept = 0;
  while (true) {
    if (nms_cancel_requested(cancel)) return kNmsCancelled;
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
    // Positions up to q start at or before s <= e + offset (any before-order works).
    const int64_t from = ws.start[q] <= e + offset ? q + 1 : 0;
    const int64_t limit = gallop_upper_bound(ws.start.data(), from, sw.n, e + offset);
    sw.collect(limit, s - offset);
    const std::vector<int64_t>& hits = ws.hits;
    const int64_t m = static_cast<int64_t>(hits.size());
    if (params.method == kNmsGaussian) {
      // Same bits as nms_pair_update (decay_exp(-0) = 1), in vectorizable passes.
      // Padded to whole vectors with [+inf, +inf] (no overlap: factor 1, unused), so
      // that no scalar remainder loop runs.
      const int64_t padded = (m + 7) & ~int64_t{7};
      ws.decay.resize(3 * padded);
      double* hs = ws.decay.data() + padded;
      double* he = hs + padded;
      for (int64_t i = 0; i < m; ++i) {
        hs[i] = ws.start[hits[i]];
        he[i] = ws.end[hits[i]];
      }
      for (int64_t i = m; i < padded; ++i) hs[i] = he[i] = INFINITY;
      const double* d = ws.decay.data();
      gaussian_decays(hs, he, padded, s, e, offset, params.sigma, ws.decay.data());
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

// Length classes of the bucketed gaussian sweep (unit = the mean length): bucket 0
// holds lengths <= unit, bucket k >= 1 lengths in [unit 2^(k-1), unit 2^k) (the last
// one everything longer). Factor-2 classes measured 4-13 % faster at N = 50k than
// factor 4 (less slack in each range), the same at 10k.
constexpr int kMaxBuckets = 12;
constexpr int64_t kBucketMinSize = 2048;  // smaller problems take the per-overlap sweep

// First position q in [first, last) with x <= start[q] (last if none), branch-free.
inline int64_t lower_bound_position(const double* start, int64_t first, int64_t last, double x) {
  const double* base = start + first;
  int64_t len = last - first;
  while (len > 1) {
    const int64_t half = len >> 1;
    base = base[half - 1] < x ? base + half : base;
    len -= half;
  }
  return (base - start) + (len == 1 && base[0] < x);
}

// Per bucket, a grid over start values narrows the searches: cell(x) = clamp(floor((x -
// origin) * scale), 0, cells - 1) is non-decreasing in x, so the positions of the bucket
// (sorted by start) with start < x all lie before cell_first[cell(x) + 1] and those with
// start >= x after cell_first[cell(x)]: a search within one cell settles any bound.
// Four cells per position (most cells hold 0 or 1 position, so the searches are short)
// measured 5 % faster at N = 10k and 11 % at 50k than one cell per 4 positions.
struct BucketGrid {
  double origin, scale;
  int64_t cells, table;  // cells, offset of the cell_first entries (cells + 1) in ws.packed_grid
};

inline int64_t grid_cell(const BucketGrid& g, double x) {
  const double c = (x - g.origin) * g.scale;  // NaN only if scale = 0 (then one cell)
  return !(c > 0.0) ? 0 : (c >= static_cast<double>(g.cells - 1) ? g.cells - 1 : static_cast<int64_t>(c));
}

// Builds the grids of the buckets over their positions [first[k], first[k + 1]).
void build_grids(const double* start, const int64_t* first, int buckets, std::vector<BucketGrid>& grids,
                 std::vector<int64_t>& table) {
  grids.resize(buckets);
  table.clear();
  for (int k = 0; k < buckets; ++k) {
    const int64_t a = first[k], b = first[k + 1], size = b - a;
    BucketGrid& g = grids[k];
    g.cells = std::max<int64_t>(1, 4 * size);
    g.origin = size > 0 ? start[a] : 0.0;
    const double span = size > 0 ? start[b - 1] - start[a] : 0.0;
    g.scale = span > 0.0 && std::isfinite(static_cast<double>(g.cells) / span) ? static_cast<double>(g.cells) / span : 0.0;
    if (g.scale == 0.0) g.cells = 1;  // no spread (or none representable): one cell
    g.table = static_cast<int64_t>(table.size());
    table.resize(table.size() + g.cells + 1);
    int64_t* t = table.data() + g.table;
    int64_t c = 0;
    for (int64_t q = a; q < b; ++q) {
      const int64_t cq = grid_cell(g, start[q]);
      while (c <= cq) t[c++] = q;
    }
    while (c <= g.cells) t[c++] = b;
  }
}

// Gaussian Soft-NMS without pruning (min_score <= 0), positions grouped in length
// buckets (ws.bucket_first, ws.bucket_len), each sorted by (start, index). A segment of
// bucket k that overlaps the kept [s, e] starts within [s - offset - len_max(k), e +
// offset]: a contiguous range of the bucket, nearly all of it overlapping, decayed
// branch-free (non-overlapping and dead positions get the factor 1 exactly). Keys
// as in Sweep: a block whose best position was lowered turns dirty; a raised
// (negative) score re-keys its block at once.
HF_SIMD_CLONES
int64_t bucket_sweep_loop(Sweep& sw, NmsWorkspace& ws, const NmsParams& params, int buckets, int64_t* keep,
                          double* kept_scores, const int32_t* cancel) {
  const double offset = params.offset, sigma = params.sigma;
  bool negative = false;  // decays raise only negative scores and keep signs
  for (int64_t q = 0; q < sw.n; ++q) negative |= ws.score[q] < 0.0;
  int64_t* first = ws.bucket_first.data();  // buckets + 1 bounds
  const double* len_max = ws.bucket_len.data();
  std::vector<BucketGrid> grids;
  std::vector<int64_t>& table = ws.packed_grid;
  build_grids(ws.start.data(), first, buckets, grids, table);
  ws.decay.resize(sw.n + 16);  // the factors of one range (rounded out to whole vectors)
  double* decay = ws.decay.data();
  int64_t kept = 0;
  while (true) {
    if (nms_cancel_requested(cancel)) return kNmsCancelled;
    const int64_t q = sw.top();
    if (q < 0) break;
    const double current = ws.score[q];
    if (current < params.min_score) break;
    keep[kept] = ws.order[q];
    kept_scores[kept] = current;
    ++kept;
    const double s = ws.start[q], e = ws.end[q];
    sw.kill(q);
    const double lo = s - offset, hi = e + offset;  // overlap needs end >= lo, start <= hi
    double* start = ws.start.data();
    for (int k = 0; k < buckets; ++k) {
      if (first[k] == first[k + 1]) continue;
      // end >= lo and end - start <= len_max(k) (rounded; margins cover the rounding).
      const double reach = len_max[k] * (1.0 + 1e-9);
      const double bound = (lo - reach) - (std::fabs(lo) + reach) * 1e-12;
      const BucketGrid& g = grids[k];
      const int64_t* t = table.data() + g.table;
      const int64_t c0 = grid_cell(g, bound), c1 = grid_cell(g, hi);
      const int64_t q0 = lower_bound_position(start, t[c0], t[c0 + 1], bound);
      const int64_t q1 = upper_bound_position(start + t[c1], t[c1 + 1] - t[c1], hi) + t[c1];
      if (q0 >= q1) continue;
      // The decay factors of the range rounded out to whole vectors (no scalar
      // remainder; the extra positions' factors are not used), then applied.
      const int64_t a0 = q0 & ~int64_t{7}, a1 = (q1 + 7) & ~int64_t{7};
      const double* factor = decay - a0;
      const double* end = ws.end.data();
      double* d = decay - a0;
      for (int64_t p = a0; p < a1; ++p) {  // inlined: vectorized in this function's clones
        const double iou = segment_iou(s, e, start[p], end[p], offset);
        d[p] = decay_exp(-(iou * iou) / sigma);
      }
      double* score = ws.score.data();
      if (!negative) {  // no score can rise: one plain (vectorized) product (3 % faster at 10k)
        for (int64_t p = q0; p < q1; ++p) score[p] *= factor[p];
        for (int64_t kb = q0 >> kKeyBits; kb <= (q1 - 1) >> kKeyBits; ++kb) sw.after_decay(kb, false);
        continue;
      }
      for (int64_t p0 = q0; p0 < q1;) {  // key block by key block: a raised score re-keys its block
        const int64_t kb = p0 >> kKeyBits;
        const int64_t p1 = std::min(q1, (kb + 1) << kKeyBits);
        int raised = 0;
        for (int64_t p = p0; p < p1; ++p) {
          const double old = score[p];
          const double updated = old * factor[p];
          score[p] = updated;
          raised |= updated > old;
        }
        sw.after_decay(kb, raised != 0);
        p0 = p1;
      }
    }
    // Drops the dead positions once a quarter of them are dead (bucket by bucket, order kept).
    if (sw.n >= kCompactMin && 4 * sw.dead > sw.n) {
      int64_t w = 0;
      for (int k = 0; k < buckets; ++k) {
        const int64_t from = first[k], to = first[k + 1];
        first[k] = w;
        for (int64_t p = from; p < to; ++p) {
          if (ws.end[p] == -INFINITY) continue;
          ws.order[w] = ws.order[p];
          ws.start[w] = ws.start[p];
          ws.end[w] = ws.end[p];
          ws.score[w] = ws.score[p];
          ++w;
        }
      }
      first[buckets] = w;
      sw.resize(w);
      build_grids(ws.start.data(), first, buckets, grids, table);
    }
  }
  return kept;
}

// Regroups ws.order (sorted by (start, index)) by length bucket, keeping that order
// within each bucket; sets ws.bucket_first / ws.bucket_len and returns the bucket count.
int bucket_by_length(const double* starts, const double* ends, int64_t n, NmsWorkspace& ws) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += ends[i] - starts[i];
  const double unit = total / static_cast<double>(n);  // the mean length
  const int buckets = n >= kBucketMinSize && unit > 0.0 && std::isfinite(unit) ? kMaxBuckets : 1;
  std::vector<int64_t>& id = ws.hits;  // bucket of each position, then scratch
  id.resize(n);
  int64_t count[kMaxBuckets + 1] = {0};
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = ws.order[q];
    const double len = ends[i] - starts[i];
    int k = 0;
    if (buckets > 1 && len > unit) {
      int exponent;
      std::frexp(len / unit, &exponent);  // len / unit in [2^(exponent-1), 2^exponent)
      k = std::min(buckets - 1, std::max(1, exponent));
    }
    id[q] = k;
    ++count[k + 1];
  }
  ws.bucket_first.assign(buckets + 1, 0);
  for (int k = 0; k < buckets; ++k) ws.bucket_first[k + 1] = ws.bucket_first[k] + count[k + 1];
  std::vector<int64_t> cursor(ws.bucket_first.begin(), ws.bucket_first.end() - 1);
  std::vector<int64_t> regrouped(n);
  ws.bucket_len.assign(buckets, 0.0);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t k = id[q], i = ws.order[q];
    regrouped[cursor[k]++] = i;
    ws.bucket_len[k] = std::max(ws.bucket_len[k], ends[i] - starts[i]);
  }
  ws.order.swap(regrouped);
  return buckets;
}

}  // namespace
}  // namespace nms_detail

int64_t soft_nms_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws, const int32_t* cancel) {
  using namespace nms_detail;
  if (n <= 0) return 0;
  if (n < kPairListMaxSize) {
    const int64_t kept = soft_nms_pairs(starts, ends, scores, n, params, kPairListMaxPairs * n, keep, kept_scores, ws);
    if (kept >= 0) return kept;
  }
  return soft_nms_overlap_sweep(starts, ends, scores, n, params, keep, kept_scores, ws, cancel);
}

namespace nms_detail {

int64_t soft_nms_overlap_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                               const NmsParams& params, int64_t* keep, double* kept_scores, NmsWorkspace& ws,
                               const int32_t* cancel) {
  if (n <= 0) return 0;
  sort_by_start(starts, n, ws);
  const bool prune = params.min_score > 0.0;
  if (params.method == kNmsGaussian && !prune && n >= kBucketMinSize) {
    const int buckets = bucket_by_length(starts, ends, n, ws);
    ws.start.resize(n);
    ws.end.resize(n);
    ws.score.resize(n);
    for (int64_t q = 0; q < n; ++q) {
      const int64_t i = ws.order[q];
      ws.start[q] = starts[i];
      ws.end[q] = ends[i];
      ws.score[q] = scores[i];
    }
    Sweep sw(ws, n, /*ends=*/false);
    return bucket_sweep_loop(sw, ws, params, buckets, keep, kept_scores, cancel);
  }
  ws.start.resize(n);
  ws.end.resize(n);
  ws.score.resize(n);
  // With min_score > 0 a score below it never reaches min_score again (a decay keeps
  // a non-negative score non-negative and never raises it; a negative one stays <= 0),
  // so such segments can be dropped for good. With min_score <= 0 a negative score
  // may still rise above min_score and must stay alive.
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = ws.order[q];
    const bool dead = prune && scores[i] < params.min_score;
    ws.start[q] = starts[i];
    ws.end[q] = dead ? -INFINITY : ends[i];
    ws.score[q] = dead ? -INFINITY : scores[i];
  }
  Sweep sw(ws, n);
  return sweep_loop(sw, ws, params, prune, keep, kept_scores, cancel);
}

}  // namespace nms_detail

int64_t soft_nms_quadratic(const double* starts, const double* ends, const double* scores,
                           int64_t n, const NmsParams& params, int64_t* keep, double* kept_scores,
                           const int32_t* cancel) {
  if (n <= 0) return 0;
  std::vector<double> current(scores, scores + n);
  std::vector<uint8_t> alive(n, 1);
  int64_t kept = 0;
  while (true) {
    if (nms_cancel_requested(cancel)) return kNmsCancelled;
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
