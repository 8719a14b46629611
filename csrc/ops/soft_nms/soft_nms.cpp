// CPU (soft-)NMS (soft_nms.h): the dispatcher first, then the parts the algorithms
// share (the sort by start, the block tournament), the three algorithms and the O(n^2)
// baseline. Every algorithm gives the bits of the O(n^2) loop.
#include "soft_nms.h"

#include <algorithm>
#include <climits>
#include <vector>

namespace himnet_fast {
namespace {

// One call's inputs and outputs.
struct Run {
  const double *starts, *ends, *scores;
  int64_t n;
  const NmsParams& params;
  int64_t* keep;
  double* kept_scores;
  const int32_t* cancel;
};

bool list_pairs(const Run& run, int64_t max_pairs, SoftNmsWorkspace::Buffers& ws);
int64_t select_by_pairs(const Run& run, SoftNmsWorkspace::Buffers& ws);
int64_t overlap_sweep(const Run& run, SoftNmsWorkspace::Buffers& ws);
int64_t length_buckets(const Run& run, SoftNmsWorkspace::Buffers& ws);
int64_t quadratic(const Run& run);

inline int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// With min_score > 0 a score below it never reaches min_score again (a decay keeps a
// non-negative score non-negative and never raises it; a negative one stays <= 0), so such
// segments can be dropped for good. With min_score <= 0 a negative score may still rise
// above min_score and must stay alive (the length buckets run only without pruning).
inline bool prunes(const NmsParams& params) { return params.min_score > 0.0; }

// Pair lists for n below this, with at most kPairListMaxPairs candidate pairs per segment.
constexpr int64_t kPairListMaxSize = 2048;
constexpr int64_t kPairListMaxPairs = 64;
// Length buckets from this size on (smaller ones the pair lists declined are dense: the
// per-overlap sweep takes them).
constexpr int64_t kBucketMinSize = 2048;

}  // namespace

// Which algorithm runs when, and why. The work of all three follows the number of
// overlapping pairs, not n^2; it is still quadratic when every segment overlaps every
// other (dense worst case, measured in BENCHMARKS.md): each selection updates all the
// alive ones.
//  1. Pair lists, for n < 2048 with at most 64 candidate pairs per segment: IoUs do not
//     depend on the scores, so every overlapping pair is listed once with its update
//     factor, and a selection only walks the kept segment's neighbours. 1.27x faster
//     than the per-overlap sweep on the THUMOS14 test set's proposals (233 groups, about
//     4 pairs per segment: 5.4 vs 6.9 ms on one core). Above the pair budget they decline.
//  2. Length buckets, for larger gaussian problems without pruning (min_score <= 0):
//     the overlaps of a kept segment within a bucket of similar lengths, sorted by start,
//     form one contiguous range, decayed in whole vectors (no per-overlap bookkeeping;
//     AVX-512: 5.3 ms at n = 10k, the AVX2 clone alone 7.3 ms).
//  3. The per-overlap sweep otherwise (hard, linear, pruned gaussian, dense small
//     problems): sorted by start, a tree of per-block maximum ends finds the alive
//     segments overlapping each kept one.
int64_t soft_nms(const double* starts, const double* ends, const double* scores, int64_t n,
                 const NmsParams& params, int64_t* keep, double* kept_scores, SoftNmsWorkspace& workspace,
                 const int32_t* cancel, SoftNmsAlgorithm algorithm) {
  if (n <= 0) return 0;
  const Run run{starts, ends, scores, n, params, keep, kept_scores, cancel};
  SoftNmsWorkspace::Buffers& ws = *workspace.buffers;
  switch (algorithm) {
    case SoftNmsAlgorithm::kPairLists:
      return list_pairs(run, INT64_MAX, ws) ? select_by_pairs(run, ws) : overlap_sweep(run, ws);
    case SoftNmsAlgorithm::kOverlapSweep: return overlap_sweep(run, ws);
    case SoftNmsAlgorithm::kLengthBuckets: return length_buckets(run, ws);
    case SoftNmsAlgorithm::kQuadratic: return quadratic(run);
    case SoftNmsAlgorithm::kAuto: break;
  }
  if (n < kPairListMaxSize && list_pairs(run, kPairListMaxPairs * n, ws)) return select_by_pairs(run, ws);
  if (params.method == kNmsGaussian && !prunes(params) && n >= kBucketMinSize) {
    return length_buckets(run, ws);
  }
  return overlap_sweep(run, ws);
}

// Positions are a sorted order of the local indices (per algorithm); arrays below are
// indexed by position unless they say otherwise.
struct SoftNmsWorkspace::Buffers {
  std::vector<int64_t> order;             // position -> local index
  std::vector<double> start, end, score;  // end and score are -inf once dead
  struct Sort {
    std::vector<uint64_t> keys;  // packed (start, index) or radix keys, two halves
    std::vector<int64_t> index;  // radix sort: the indices, two halves
    std::vector<int64_t> count;  // counting sort: per start value; radix sort: per digit
  } sort;
  struct Tournament {
    std::vector<double> key_score;  // per block: an upper bound of its best (score, index)
    std::vector<int64_t> key_index, key_pos;
    std::vector<uint8_t> dirty;   // per block: the key may exceed the block's best
    std::vector<int64_t> winner;  // winner[v] = best block under tree node v
  } tournament;
  struct PairLists {
    std::vector<int64_t> stop;           // per position: the first one past its candidates
    std::vector<int32_t> a, b;           // the candidate pairs (local indices)
    std::vector<double> geometry;        // their (s1, e1, s2, e2) planes
    std::vector<double> factor;          // their update factors
    std::vector<int64_t> adj_first;      // per local index i: its neighbours adj[adj_first[i] ..
    std::vector<int32_t> adj;            //   adj_first[i + 1]) with factors adj_factor
    std::vector<double> adj_factor;
  } pairs;
  struct Sweep {
    std::vector<double> block_end;  // tree of the max alive end per block
    std::vector<int64_t> hits;      // alive positions overlapping the kept segment
    std::vector<double> planes;     // their decay factors, starts and ends
  } sweep;
  struct Buckets {
    std::vector<int64_t> first;    // position bounds of the buckets
    std::vector<double> len_max;   // each bucket's max length
    std::vector<int64_t> id;       // bucket of each position (start order)
    std::vector<int64_t> regrouped;
    std::vector<int64_t> grid;     // the buckets' start grids (cell -> first position)
    std::vector<double> decay;     // the factors of one range
  } buckets;
};

SoftNmsWorkspace::SoftNmsWorkspace() : buffers(new Buffers) {}
SoftNmsWorkspace::~SoftNmsWorkspace() = default;

namespace {

using Buffers = SoftNmsWorkspace::Buffers;

// ----------------------------------------------------------------------------- shared parts

// Integer starts in [0, 2^31) (snippet indices, the proposals' case) take a stable
// counting sort when they span at most 4n + 256 values: its count array then stays a
// few times the size of the n-element passes (the 256 admits small groups over a
// short span).
constexpr int64_t kCountingRangePerSegment = 4, kCountingRangeSlack = 256;

// ws.order = local indices sorted by (start, index). Integer starts sort by counting or
// as packed 64-bit (start, index) keys; others by an LSD radix sort of their
// order-preserving keys.
void sort_by_start(const double* starts, int64_t n, Buffers& ws) {
  ws.order.resize(n);
  bool packed = n < (int64_t{1} << 31);
  for (int64_t i = 0; packed && i < n; ++i) {
    packed = starts[i] >= 0.0 && starts[i] < 2147483648.0 && starts[i] == static_cast<double>(static_cast<int64_t>(starts[i]));
  }
  double lowest = starts[0], highest = lowest;
  for (int64_t i = 0; packed && i < n; ++i) {
    lowest = std::min(lowest, starts[i]);
    highest = std::max(highest, starts[i]);
  }
  if (packed && highest - lowest <= static_cast<double>(kCountingRangePerSegment * n + kCountingRangeSlack)) {
    const int64_t base = static_cast<int64_t>(lowest), range = static_cast<int64_t>(highest) - base + 1;
    std::vector<int64_t>& count = ws.sort.count;
    count.assign(range + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++count[static_cast<int64_t>(starts[i]) - base + 1];
    for (int64_t v = 0; v < range; ++v) count[v + 1] += count[v];
    for (int64_t i = 0; i < n; ++i) ws.order[count[static_cast<int64_t>(starts[i]) - base]++] = i;
    return;
  }
  std::vector<uint64_t>& keys = ws.sort.keys;
  if (packed) {
    keys.resize(n);
    for (int64_t i = 0; i < n; ++i) keys[i] = static_cast<uint64_t>(starts[i]) << 32 | static_cast<uint64_t>(i);
    if (!std::is_sorted(keys.begin(), keys.end())) std::sort(keys.begin(), keys.end());
    for (int64_t q = 0; q < n; ++q) ws.order[q] = static_cast<int64_t>(keys[q] & 0xffffffffu);
    return;
  }
  // Stable, so equal starts keep index order; 11 bits per pass; passes whose digit is
  // the same for every key are skipped.
  constexpr int kDigitBits = 11, kPasses = 6;
  constexpr uint64_t kDigitMask = (uint64_t{1} << kDigitBits) - 1;
  keys.resize(2 * n);
  uint64_t* a = keys.data();
  uint64_t* b = a + n;
  ws.sort.index.resize(2 * n);
  int64_t* ia = ws.sort.index.data();
  int64_t* ib = ia + n;
  std::vector<int64_t>& count = ws.sort.count;
  count.assign(static_cast<size_t>(kPasses) << kDigitBits, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t key = OrderedKey<double>::radix(starts[i]);
    a[i] = key;
    ia[i] = i;
    for (int pass = 0; pass < kPasses; ++pass) ++count[(pass << kDigitBits) + ((key >> (pass * kDigitBits)) & kDigitMask)];
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

// First position of the maximum of x[0..m) (m a multiple of 4, callers pad with -inf;
// 0 when all are -inf). Branch-free: four lanes keep their first maximum, then the
// lowest position wins ties between lanes.
#if defined(__GNUC__) && !defined(__clang__)
typedef double Lanes4 __attribute__((vector_size(32)));
typedef int64_t Positions4 __attribute__((vector_size(32)));
inline int64_t first_argmax(const double* x, int64_t m) {
  Lanes4 best = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  Positions4 at = {0, 1, 2, 3}, position = {0, 1, 2, 3};
  for (int64_t i = 0; i < m; i += 4, position += 4) {
    Lanes4 v;
    std::memcpy(&v, x + i, sizeof(v));
    const Positions4 better = v > best;
    best = better ? v : best;
    at = better ? position : at;
  }
  int64_t r = at[0];
  double b = best[0];
  for (int l = 1; l < 4; ++l) {
    const bool take = best[l] > b || (best[l] == b && at[l] < r);
    r = take ? at[l] : r;
    b = take ? best[l] : b;
  }
  return r;
}
#else
inline int64_t first_argmax(const double* x, int64_t m) {
  int64_t r = 0;
  for (int64_t i = 1; i < m; ++i) r = x[i] > x[r] ? i : r;
  return r;
}
#endif

// Positions are grouped in blocks of 64: the unit of a tournament key and of an end-tree
// leaf. 64 measured fastest on the THUMOS14 proposals (16: 1.3x slower, 256: 1.2x).
constexpr int64_t kBlockBits = 6;
constexpr int64_t kBlock = int64_t{1} << kBlockBits;

// The lazy block tournament of every algorithm: the position of the best alive (score,
// index), highest score first, ties to the lowest local index (index[q] for position q).
// Per block a key (score, index, position) that bounds the block's best from above and
// is exact unless the block is dirty. Decays only lower scores (or raise a negative
// one), so lowering the key's position just marks its block dirty; a dirty block is
// re-keyed when it reaches the top. A raised score that beats its block's key becomes
// the key at once. kIndexIsPosition: positions are the local indices (the pair lists),
// so the first maximum of a block wins its ties.
template <bool kIndexIsPosition>
struct BlockTournament {
  Buffers::Tournament& buffers;
  // Raw views of the buffers, set by reset(): the loops store bytes (dirty), which may alias
  // anything, so vectors reached through a reference would be reloaded after every store
  // (2 % slower pair lists at N = 1k).
  double* key_score;
  int64_t *key_index, *key_pos, *winner;  // key_index: unused when kIndexIsPosition
  uint8_t* dirty;
  double* score;         // leaves * kBlock positions: -inf when dead or padding
  const int64_t* index;  // unused when kIndexIsPosition
  int64_t leaves;

  // Scores of positions [0, n) in ws.score; pads them and builds the keys.
  BlockTournament(Buffers& ws, int64_t n) : buffers(ws.tournament) { reset(ws, n); }

  void reset(Buffers& ws, int64_t n) {
    leaves = pow2_at_least(ceil_div(n, kBlock));
    ws.score.resize(leaves << kBlockBits);
    std::fill(ws.score.begin() + n, ws.score.end(), -INFINITY);
    score = ws.score.data();
    index = ws.order.data();
    buffers.key_score.resize(leaves);
    buffers.key_index.resize(leaves);
    buffers.key_pos.resize(leaves);
    buffers.dirty.resize(leaves);
    buffers.winner.resize(2 * leaves);
    key_score = buffers.key_score.data();
    key_index = buffers.key_index.data();
    key_pos = buffers.key_pos.data();
    dirty = buffers.dirty.data();
    winner = buffers.winner.data();
    for (int64_t b = 0; b < leaves; ++b) {
      rekey(b);
      winner[leaves + b] = b;
    }
    for (int64_t v = leaves - 1; v >= 1; --v) winner[v] = pick(winner[2 * v], winner[2 * v + 1]);
  }

  // The better of blocks a < b: b only when strictly ahead (higher score, then lower index).
  // When indices are positions, a's are all below b's: the score decides.
  int64_t pick(int64_t a, int64_t b) const {
    const double sa = key_score[a], sb = key_score[b];
    if (kIndexIsPosition) return sb > sa ? b : a;
    const bool b_ahead = sb > sa || (sb == sa && key_index[b] < key_index[a]);
    return b_ahead ? b : a;
  }

  void replay(int64_t b) {
    for (int64_t v = (leaves + b) >> 1; v >= 1; v >>= 1) winner[v] = pick(winner[2 * v], winner[2 * v + 1]);
  }

  // Exact key of block b: its best alive position (dead ones score -inf; an all-dead block keys -inf).
  void rekey(int64_t b) {
    const int64_t first = b << kBlockBits;
    const double* s = score + first;
    int64_t at = first_argmax(s, kBlock);
    const double top = s[at];
    if (!kIndexIsPosition) {  // ties between positions (rare) go to the lowest index
      int64_t equal = 0;
      for (int64_t q = 0; q < kBlock; ++q) equal += s[q] == top;
      if (equal > 1 && top != -INFINITY) {
        for (int64_t q = at + 1; q < kBlock; ++q) at = s[q] == top && index[first + q] < index[first + at] ? q : at;
      }
    }
    key_score[b] = top;
    // Positions are their own indices: key_pos serves (one store less per re-key; the pair
    // lists at N = 1k: 139 instead of 147 us).
    if (!kIndexIsPosition) key_index[b] = top == -INFINITY ? INT64_MAX : index[first + at];
    key_pos[b] = first + at;
    dirty[b] = 0;
  }

  int64_t index_of(int64_t q) const { return kIndexIsPosition ? q : index[q]; }

  // Position of the alive segment with the best (score, index), or -1 if none.
  int64_t top() {
    while (true) {
      const int64_t b = winner[1];
      if (key_score[b] == -INFINITY) return -1;
      if (!dirty[b]) return key_pos[b];
      rekey(b);
      replay(b);
    }
  }

  // The next selection: the top position, recorded in run.keep / kept_scores (the caller
  // then kills it); kDone once none is alive or the best is below min_score, kCancelled
  // once run.cancel is set.
  static constexpr int64_t kDone = -1, kCancelled = -2;
  int64_t next_selection(const Run& run, int64_t& kept) {
    if (nms_cancel_requested(run.cancel)) return kCancelled;
    const int64_t q = top();
    if (q < 0 || score[q] < run.params.min_score) return kDone;
    run.keep[kept] = index_of(q);
    run.kept_scores[kept] = score[q];
    ++kept;
    return q;
  }

  // What a selection loop that ended on `last` (next_selection's kDone or kCancelled) returns.
  static int64_t result(int64_t last, int64_t kept) { return last == kCancelled ? kNmsCancelled : kept; }

  // score[q] = updated <= score[q] (branch-free: about half the pair lists' neighbours
  // are already dead, an unpredictable branch).
  void lower(int64_t q, double updated) {
    const int64_t b = q >> kBlockBits;
    dirty[b] |= static_cast<uint8_t>(static_cast<int>(updated < score[q]) & static_cast<int>(key_pos[b] == q));
    score[q] = updated;
  }

  // score[q] = updated, either way.
  void set(int64_t q, double updated) {
    if (!(updated > score[q])) return lower(q, updated);
    score[q] = updated;  // a raised negative score: it may now lead its block
    const int64_t b = q >> kBlockBits, i = index_of(q);
    if (updated > key_score[b] || (updated == key_score[b] && i < index_of(key_pos[b]))) {
      key_score[b] = updated;  // ahead of the bound of every other position: exact
      if (!kIndexIsPosition) key_index[b] = i;
      key_pos[b] = q;
      dirty[b] = 0;
      replay(b);
    }
  }

  // Restores block b's key after its scores were multiplied in place: a raised score
  // may lead the block (re-keyed at once); a lowered key position makes it dirty.
  void decayed(int64_t b, bool raised) {
    if (raised) {
      rekey(b);
      replay(b);
    } else if (score[key_pos[b]] != key_score[b]) {
      dirty[b] = 1;
    }
  }
};

// out[i] = the gaussian factor of [s, e] with [hs[i], he[i]], in a loop that vectorizes
// in its caller's clones (the same IEEE operations, so the same bits).
__attribute__((always_inline)) inline void gaussian_factors(const double* hs, const double* he, int64_t m,
                                                            double s, double e, double offset, double sigma,
                                                            double* out) {
  for (int64_t i = 0; i < m; ++i) out[i] = gaussian_decay(segment_iou(s, e, hs[i], he[i], offset), sigma);
}

// First position q in [first, last) of the sorted start[] with !before(start[q]) (last
// if none): std::partition_point without data-dependent branches.
template <typename Before>
inline int64_t partition_point(const double* start, int64_t first, int64_t last, Before before) {
  const double* base = start + first;
  int64_t len = last - first;
  while (len > 1) {
    const int64_t half = len >> 1;
    base = before(base[half - 1]) ? base + half : base;
    len -= half;
  }
  return (base - start) + (len == 1 && before(base[0]));
}

// Sweeps drop the dead positions from their arrays once many are dead (keeping their
// order), so that scans skip fewer; below this size a rebuild costs more than it saves.
constexpr int64_t kCompactMinSize = 1024;

// Moves the alive positions of [from, to) to [w, ...) in order; returns the next free position.
int64_t compact(Buffers& ws, int64_t from, int64_t to, int64_t w) {
  for (int64_t p = from; p < to; ++p) {
    if (ws.end[p] == -INFINITY) continue;
    ws.order[w] = ws.order[p];
    ws.start[w] = ws.start[p];
    ws.end[w] = ws.end[p];
    ws.score[w] = ws.score[p];
    ++w;
  }
  return w;
}

// Copies the segments to ws.start / end / score in ws.order; with `prune`, a score below
// min_score starts dead (see prunes). start and end are readable up to whole blocks (the
// padding's values are never used, only read; a reused workspace keeps older ones there).
void gather_positions(const Run& run, bool prune, Buffers& ws) {
  const int64_t n = run.n, padded = ceil_div(n, kBlock) * kBlock;
  ws.start.resize(padded, INFINITY);
  ws.end.resize(padded, INFINITY);
  ws.score.resize(n);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = ws.order[q];
    const bool dead = prune && run.scores[i] < run.params.min_score;
    ws.start[q] = run.starts[i];
    ws.end[q] = dead ? -INFINITY : run.ends[i];
    ws.score[q] = dead ? -INFINITY : run.scores[i];
  }
}

// ----------------------------------------------------------------------------- 1. pair lists

// out[i] = the gaussian factor of the pair ([s1, e1], [s2, e2])_i, or its IoU.
// Vectorized (contiguous planes); nms_pair_update's operations, so the same bits.
HF_SIMD_CLONES
void pair_factors(const double* s1, const double* e1, const double* s2, const double* e2, int64_t m,
                  double offset, double sigma, bool gaussian, double* out) {
  if (gaussian) {
    for (int64_t i = 0; i < m; ++i) out[i] = gaussian_decay(segment_iou(s1[i], e1[i], s2[i], e2[i], offset), sigma);
  } else {
    for (int64_t i = 0; i < m; ++i) out[i] = segment_iou(s1[i], e1[i], s2[i], e2[i], offset);
  }
}

// Lists the candidate pairs of the n segments, then keeps those that change a score as
// adjacency lists of both ends (factors: gaussian the decay; linear 1 - iou; hard the
// IoU, above the threshold). False (nothing listed) above max_pairs candidates or
// 2^31 segments (the lists hold int32 indices).
bool list_pairs(const Run& run, int64_t max_pairs, Buffers& ws) {
  const int64_t n = run.n;
  if (n > INT32_MAX) return false;
  const NmsParams& params = run.params;
  auto& pl = ws.pairs;
  sort_by_start(run.starts, n, ws);
  ws.start.resize(n);
  ws.end.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    ws.start[k] = run.starts[ws.order[k]];
    ws.end[k] = run.ends[ws.order[k]];
  }
  // Candidates: k < j in start order with start_j <= end_k + offset, a superset of the
  // pairs with a positive computed intersection (see soft_nms.h).
  const double* ss = ws.start.data();
  const double* se = ws.end.data();
  pl.stop.resize(n);
  int64_t m = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double hi = se[k] + params.offset;
    int64_t j = k + 1;
    while (j < n && ss[j] <= hi) ++j;
    pl.stop[k] = j;
    m += j - k - 1;
    if (m > max_pairs) return false;
  }
  pl.a.resize(m);
  pl.b.resize(m);
  pl.geometry.resize(4 * m);
  double* s1 = pl.geometry.data();
  double* e1 = s1 + m;
  double* s2 = e1 + m;
  double* e2 = s2 + m;
  for (int64_t k = 0, p = 0; k < n; ++k) {
    const int32_t i = static_cast<int32_t>(ws.order[k]);
    for (int64_t j = k + 1; j < pl.stop[k]; ++j, ++p) {
      pl.a[p] = i;
      pl.b[p] = static_cast<int32_t>(ws.order[j]);
      s1[p] = ss[k];
      e1[p] = se[k];
      s2[p] = ss[j];
      e2[p] = se[j];
    }
  }
  std::vector<double>& w = pl.factor;
  w.resize(m);
  const bool gaussian = params.method == kNmsGaussian, linear = params.method == kNmsLinear;
  pair_factors(s1, e1, s2, e2, m, params.offset, params.sigma, gaussian, w.data());
  // Pairs that change nothing (factor 1; linear / hard: IoU not above the threshold) are dropped.
  int64_t used = 0;
  for (int64_t p = 0; p < m; ++p) {
    const double f = w[p];
    pl.a[used] = pl.a[p];
    pl.b[used] = pl.b[p];
    w[used] = linear ? 1.0 - f : f;
    used += gaussian ? f != 1.0 : f > params.iou_threshold;
  }
  std::vector<int64_t>& first = pl.adj_first;
  first.assign(n + 2, 0);
  for (int64_t p = 0; p < used; ++p) {
    ++first[pl.a[p] + 2];
    ++first[pl.b[p] + 2];
  }
  for (int64_t i = 0; i < n; ++i) first[i + 2] += first[i + 1];
  pl.adj.resize(2 * used);
  pl.adj_factor.resize(2 * used);
  for (int64_t p = 0; p < used; ++p) {  // first[i + 1] runs from the start of i's list to its end
    const int64_t x = first[pl.a[p] + 1]++, y = first[pl.b[p] + 1]++;
    pl.adj[x] = pl.b[p];
    pl.adj_factor[x] = w[p];
    pl.adj[y] = pl.a[p];
    pl.adj_factor[y] = w[p];
  }
  return true;
}

// The selection loop over the listed neighbours; positions are the local indices.
HF_SIMD_CLONES
int64_t select_by_pairs(const Run& run, Buffers& ws) {
  const NmsParams& params = run.params;
  const bool prune = prunes(params);
  const bool hard = params.method == kNmsHard;
  const double min_score = params.min_score;  // a local: the byte stores (dirty) would force reloads
  ws.score.resize(run.n);
  for (int64_t i = 0; i < run.n; ++i) ws.score[i] = prune && run.scores[i] < params.min_score ? -INFINITY : run.scores[i];
  BlockTournament<true> tournament(ws, run.n);
  const int64_t* first = ws.pairs.adj_first.data();
  const int32_t* adj = ws.pairs.adj.data();
  const double* w = ws.pairs.adj_factor.data();
  const double* score = tournament.score;
  int64_t kept = 0, q;
  while ((q = tournament.next_selection(run, kept)) >= 0) {
    tournament.lower(q, -INFINITY);
    for (int64_t p = first[q], last = first[q + 1]; p < last; ++p) {
      const int64_t r = adj[p];
      const double old = score[r];
      double updated = hard ? -INFINITY : old * w[p];
      updated = prune && updated < min_score ? -INFINITY : updated;
      updated = old == -INFINITY ? old : updated;  // the dead stay dead (-inf * 0 would be NaN)
      if (updated > old) {  // a raised negative score (rare)
        tournament.set(r, updated);
      } else {
        tournament.lower(r, updated);
      }
    }
  }
  return tournament.result(q, kept);
}

// ----------------------------------------------------------------------------- 2. length buckets

// Length classes (unit = the mean length): bucket 0 holds lengths <= unit, bucket k >= 1
// lengths in [unit 2^(k-1), unit 2^k) (the last one everything longer). Factor-2 classes
// measured 4-13 % faster at N = 50k than factor 4 (less slack in each range), the same at 10k.
constexpr int kMaxBuckets = 12;

// Per bucket, a grid over start values narrows the searches: cell(x) = clamp(floor((x -
// origin) * scale), 0, cells - 1) is non-decreasing in x, so the positions of the bucket
// (sorted by start) with start < x all lie before cell_first[cell(x) + 1] and those with
// start >= x after cell_first[cell(x)]: a search within one cell settles any bound.
// Four cells per position (most cells hold 0 or 1 position, so the searches are short)
// measured 5 % faster at N = 10k and 11 % at 50k than one cell per 4 positions.
struct BucketGrid {
  double origin, scale;
  int64_t cells, table;  // cells, offset of the cell_first entries (cells + 1) in the grid buffer
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

// Relative margins that widen a bucket's start range past the rounding of the bounds it
// is computed from, so that it holds every overlap: the computed lengths (hence len_max)
// and lo - reach are off by at most 2^-53 (1.1e-16) of their operands; 1e-9 and 1e-12
// are far above that and still keep the range tight. Extra positions get the factor 1.
constexpr double kLengthMargin = 1e-9, kBoundMargin = 1e-12;

// Gaussian Soft-NMS without pruning (min_score <= 0), positions grouped in length
// buckets, each sorted by (start, index). A segment of bucket k that overlaps the kept
// [s, e] starts within [s - offset - len_max(k), e + offset]: a contiguous range of the
// bucket, nearly all of it overlapping, decayed branch-free (non-overlapping and dead
// positions get the factor 1 exactly, and x * 1 keeps x's bits).
HF_SIMD_CLONES
int64_t bucket_sweep_loop(const Run& run, int buckets, Buffers& ws) {
  const NmsParams& params = run.params;
  const double offset = params.offset, sigma = params.sigma;
  int64_t n = run.n, dead = 0;
  BlockTournament<false> tournament(ws, n);
  // Decays keep signs and raise only negative scores: without any, a range is one plain
  // product and its blocks are only marked (N = 10k: 5.5 % slower without it).
  bool negative = false;
  for (int64_t q = 0; q < n; ++q) negative |= ws.score[q] < 0.0;
  int64_t* first = ws.buckets.first.data();  // buckets + 1 bounds
  const double* len_max = ws.buckets.len_max.data();
  std::vector<BucketGrid> grids;
  std::vector<int64_t>& table = ws.buckets.grid;
  build_grids(ws.start.data(), first, buckets, grids, table);
  ws.buckets.decay.resize(n + 16);  // the factors of one range (rounded out to whole vectors)
  double* decay = ws.buckets.decay.data();
  int64_t kept = 0, q;
  while ((q = tournament.next_selection(run, kept)) >= 0) {
    const double s = ws.start[q], e = ws.end[q];
    ++dead;
    ws.end[q] = -INFINITY;
    tournament.lower(q, -INFINITY);
    const double lo = s - offset, hi = e + offset;  // overlap needs end >= lo, start <= hi
    const double* start = ws.start.data();
    for (int k = 0; k < buckets; ++k) {
      if (first[k] == first[k + 1]) continue;
      // end >= lo and end - start <= len_max(k) (both rounded: see kLengthMargin).
      const double reach = len_max[k] * (1.0 + kLengthMargin);
      const double bound = (lo - reach) - (std::fabs(lo) + reach) * kBoundMargin;
      const BucketGrid& g = grids[k];
      const int64_t* t = table.data() + g.table;
      const int64_t c0 = grid_cell(g, bound), c1 = grid_cell(g, hi);
      const int64_t q0 = partition_point(start, t[c0], t[c0 + 1], [bound](double v) { return v < bound; });
      const int64_t q1 = partition_point(start, t[c1], t[c1 + 1], [hi](double v) { return v <= hi; });
      if (q0 >= q1) continue;
      // The decay factors of the range rounded out to whole vectors (no scalar
      // remainder; the extra positions' factors are not used), then applied key block
      // by key block: a raised (negative) score re-keys its block.
      const int64_t a0 = q0 & ~int64_t{7}, a1 = (q1 + 7) & ~int64_t{7};
      gaussian_factors(start + a0, ws.end.data() + a0, a1 - a0, s, e, offset, sigma, decay);
      const double* factor = decay - a0;
      double* score = ws.score.data();
      if (!negative) {
        for (int64_t p = q0; p < q1; ++p) score[p] *= factor[p];
        for (int64_t kb = q0 >> kBlockBits; kb <= (q1 - 1) >> kBlockBits; ++kb) tournament.decayed(kb, false);
        continue;
      }
      for (int64_t p0 = q0; p0 < q1;) {
        const int64_t kb = p0 >> kBlockBits;
        const int64_t p1 = std::min(q1, (kb + 1) << kBlockBits);
        int raised = 0;
        for (int64_t p = p0; p < p1; ++p) {
          const double old = score[p];
          const double updated = old * factor[p];
          score[p] = updated;
          raised |= updated > old;
        }
        tournament.decayed(kb, raised != 0);
        p0 = p1;
      }
    }
    if (n >= kCompactMinSize && 4 * dead > n) {  // a quarter dead: compacted bucket by bucket
      int64_t w = 0;
      for (int k = 0; k < buckets; ++k) {
        const int64_t from = first[k], to = first[k + 1];
        first[k] = w;
        w = compact(ws, from, to, w);
      }
      first[buckets] = n = w;
      dead = 0;
      tournament.reset(ws, n);
      build_grids(ws.start.data(), first, buckets, grids, table);
    }
  }
  return tournament.result(q, kept);
}

// Sorts by start, then regroups ws.order by length bucket, keeping the start order within
// each bucket; sets the bucket bounds and max lengths and returns the bucket count.
int bucket_by_length(const Run& run, Buffers& ws) {
  const int64_t n = run.n;
  const double *starts = run.starts, *ends = run.ends;
  sort_by_start(starts, n, ws);
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += ends[i] - starts[i];
  const double unit = total / static_cast<double>(n);  // the mean length
  const int buckets = unit > 0.0 && std::isfinite(unit) ? kMaxBuckets : 1;
  auto& bk = ws.buckets;
  bk.id.resize(n);
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
    bk.id[q] = k;
    ++count[k + 1];
  }
  bk.first.assign(buckets + 1, 0);
  for (int k = 0; k < buckets; ++k) bk.first[k + 1] = bk.first[k] + count[k + 1];
  int64_t cursor[kMaxBuckets];
  std::copy(bk.first.begin(), bk.first.end() - 1, cursor);
  bk.regrouped.resize(n);
  bk.len_max.assign(buckets, 0.0);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t k = bk.id[q], i = ws.order[q];
    bk.regrouped[cursor[k]++] = i;
    bk.len_max[k] = std::max(bk.len_max[k], ends[i] - starts[i]);
  }
  ws.order.swap(bk.regrouped);
  return buckets;
}

int64_t length_buckets(const Run& run, Buffers& ws) {
  const int buckets = bucket_by_length(run, ws);
  gather_positions(run, /*prune=*/false, ws);
  return bucket_sweep_loop(run, buckets, ws);
}

// ----------------------------------------------------------------------------- 3. per-overlap sweep

// Below this many blocks the overlaps are found by one pass over the blocks' max ends
// (at most 16 reads) instead of the tree walk and its stack.
constexpr int64_t kTreeWalkMinBlocks = 16;

// Exact max end of the alive positions of each block, in a tree: finds the overlaps of
// a kept segment by scanning only the blocks that may hold some.
struct EndTree {
  std::vector<double>& node;  // leaves at [leaves, 2 leaves)
  const double* end;
  int64_t n, blocks, leaves;

  EndTree(Buffers& ws, int64_t size) : node(ws.sweep.block_end) { reset(ws, size); }

  void reset(Buffers& ws, int64_t size) {
    end = ws.end.data();
    n = size;
    blocks = ceil_div(n, kBlock);
    leaves = pow2_at_least(blocks);
    node.assign(2 * leaves, -INFINITY);
    for (int64_t b = 0; b < blocks; ++b) refresh(b, false);
    for (int64_t v = leaves - 1; v >= 1; --v) node[v] = std::max(node[2 * v], node[2 * v + 1]);
  }

  void refresh(int64_t b, bool propagate) {
    const int64_t first = b * kBlock, last = std::min(n, first + kBlock);
    double m = -INFINITY;
    for (int64_t q = first; q < last; ++q) m = std::max(m, end[q]);
    int64_t v = leaves + b;
    node[v] = m;
    if (!propagate) return;
    for (v >>= 1; v >= 1; v >>= 1) {
      const double up = std::max(node[2 * v], node[2 * v + 1]);
      if (node[v] == up) break;  // ancestors unchanged
      node[v] = up;
    }
  }

  // After position q's end became -inf (was `old`).
  void killed(int64_t q, double old) {
    if (old == node[leaves + (q >> kBlockBits)]) refresh(q >> kBlockBits, true);
  }

  // Alive positions of block b below limit with end >= lo, appended to hits (branch-free filter).
  void scan(int64_t b, int64_t limit, double lo, std::vector<int64_t>& hits) const {
    const int64_t q0 = b * kBlock, q1 = std::min(limit, q0 + kBlock);
    const size_t base = hits.size();
    hits.resize(base + (q1 - q0));
    int64_t* out = hits.data() + base;
    int64_t m = 0;
    for (int64_t q = q0; q < q1; ++q) {
      out[m] = q;
      m += end[q] >= lo;
    }
    hits.resize(base + m);
  }

  // Alive positions q < limit with end[q] >= lo, increasing, into hits.
  void collect(int64_t limit, double lo, std::vector<int64_t>& hits) const {
    hits.clear();
    if (limit <= 0) return;
    const int64_t last_block = (limit - 1) >> kBlockBits;
    if (blocks < kTreeWalkMinBlocks) {
      for (int64_t b = 0; b <= last_block; ++b) {
        if (node[leaves + b] >= lo) scan(b, limit, lo, hits);
      }
      return;
    }
    int64_t stack[2 * 64];
    int depth = 0;
    stack[depth++] = 1;
    while (depth > 0) {
      const int64_t v = stack[--depth];
      if (node[v] < lo) continue;
      int64_t first = v, span = 1;  // the blocks under node v: [first, first + span)
      while (first < leaves) {
        first <<= 1;
        span <<= 1;
      }
      first -= leaves;
      if (first > last_block) continue;
      if (span > 1) {
        stack[depth++] = 2 * v + 1;
        stack[depth++] = 2 * v;
        continue;
      }
      scan(first, limit, lo, hits);
    }
  }
};

// First position q >= from with x < start[q] (n if none), galloping from `from` (the
// answer is usually a few positions on): O(log(answer - from)) probes.
inline int64_t gallop_upper_bound(const double* start, int64_t from, int64_t n, double x) {
  const auto before = [x](double v) { return v <= x; };
  int64_t lo = from, step = 1;
  while (true) {
    const int64_t probe = lo + step - 1;
    if (probe >= n) return partition_point(start, lo, n, before);
    if (start[probe] > x) return partition_point(start, lo, probe, before);
    lo = probe + 1;
    step <<= 1;
  }
}

// The selection loop (an AVX-512 / AVX2 clone where the CPU has one: the same IEEE
// operations, so the same bits).
HF_SIMD_CLONES
int64_t sweep_loop(const Run& run, bool prune, Buffers& ws) {
  const NmsParams& params = run.params;
  const double offset = params.offset;
  int64_t n = run.n, dead = 0;
  for (int64_t q = 0; q < n; ++q) dead += ws.end[q] == -INFINITY;
  BlockTournament<false> tournament(ws, n);
  EndTree ends(ws, n);
  std::vector<int64_t>& hits = ws.sweep.hits;
  const auto kill = [&](int64_t q) {
    ++dead;
    const double old = ws.end[q];
    ws.end[q] = -INFINITY;
    ends.killed(q, old);
    tournament.lower(q, -INFINITY);
  };
  int64_t kept = 0, q;
  while ((q = tournament.next_selection(run, kept)) >= 0) {
    const double s = ws.start[q], e = ws.end[q];
    kill(q);
    // Superset of the segments with a positive computed intersection (see soft_nms.h):
    // start <= e + offset and end >= s - offset (rounding is monotone).
    // Positions up to q start at or before s <= e + offset (any before-order works).
    const int64_t from = ws.start[q] <= e + offset ? q + 1 : 0;
    ends.collect(gallop_upper_bound(ws.start.data(), from, n, e + offset), s - offset, hits);
    const int64_t m = static_cast<int64_t>(hits.size());
    if (params.method == kNmsGaussian) {
      // Padded to whole vectors with [+inf, +inf] (no overlap: factor 1, unused), so
      // that no scalar remainder loop runs.
      const int64_t padded = (m + 7) & ~int64_t{7};
      ws.sweep.planes.resize(3 * padded);
      double* d = ws.sweep.planes.data();
      double* hs = d + padded;
      double* he = hs + padded;
      for (int64_t i = 0; i < m; ++i) {
        hs[i] = ws.start[hits[i]];
        he[i] = ws.end[hits[i]];
      }
      for (int64_t i = m; i < padded; ++i) hs[i] = he[i] = INFINITY;
      gaussian_factors(hs, he, padded, s, e, offset, params.sigma, d);
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = hits[i];
        const double updated = ws.score[r] * d[i];
        if (prune && updated < params.min_score) {
          kill(r);
        } else {
          tournament.set(r, updated);
        }
      }
    } else {
      for (const int64_t r : hits) {
        const double iou = segment_iou(s, e, ws.start[r], ws.end[r], offset);
        double updated = ws.score[r];
        if (!nms_pair_update(params, iou, &updated) || (prune && updated < params.min_score)) {
          kill(r);
        } else {
          tournament.set(r, updated);
        }
      }
    }
    if (n >= kCompactMinSize && 3 * dead > n) {  // a third dead
      n = compact(ws, 0, n, 0);
      dead = 0;
      tournament.reset(ws, n);
      ends.reset(ws, n);
    }
  }
  return tournament.result(q, kept);
}

int64_t overlap_sweep(const Run& run, Buffers& ws) {
  sort_by_start(run.starts, run.n, ws);
  const bool prune = prunes(run.params);
  gather_positions(run, prune, ws);
  return sweep_loop(run, prune, ws);
}

// ----------------------------------------------------------------------------- O(n^2) baseline

// The plain loop (argmax scan + update of all alive segments per step), the structure of
// the public C++ implementations (which also evaluate exp for non-overlapping pairs; this
// loop skips those, so it is faster): the baseline of the benchmarks and the tests' oracle.
int64_t quadratic(const Run& run) {
  const int64_t n = run.n;
  std::vector<double> current(run.scores, run.scores + n);
  std::vector<uint8_t> alive(n, 1);
  int64_t kept = 0;
  while (true) {
    if (nms_cancel_requested(run.cancel)) return kNmsCancelled;
    int64_t best = -1;
    for (int64_t j = 0; j < n; ++j) {
      if (alive[j] && (best < 0 || current[j] > current[best])) best = j;
    }
    if (best < 0 || current[best] < run.params.min_score) break;
    run.keep[kept] = best;
    run.kept_scores[kept] = current[best];
    ++kept;
    alive[best] = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (!alive[j]) continue;
      const double iou = segment_iou(run.starts[best], run.ends[best], run.starts[j], run.ends[j], run.params.offset);
      if (!nms_pair_update(run.params, iou, &current[j])) alive[j] = 0;
    }
  }
  return kept;
}

}  // namespace
}  // namespace himnet_fast
