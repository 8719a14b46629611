// Torch-free tests of the post-processing algorithms: hand-computed values, and
// every Soft-NMS algorithm against the O(n^2) loop on random inputs (run under ASan+UBSan).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ops/proposals/proposals.h"
#include "ops/soft_nms/soft_nms.h"
#include "ops/video_scores/video_scores.h"
#include "test_framework.h"

using namespace himnet_fast;

namespace {

// soft_nms by one algorithm into fresh buffers of n entries.
struct Picks {
  int64_t count;
  std::vector<int64_t> keep;
  std::vector<double> scores;
  bool operator==(const Picks& o) const {
    return count == o.count && std::equal(keep.begin(), keep.begin() + std::max<int64_t>(count, 0), o.keep.begin()) &&
           std::equal(scores.begin(), scores.begin() + std::max<int64_t>(count, 0), o.scores.begin());
  }
};

Picks run_soft_nms(const std::vector<double>& s, const std::vector<double>& e, const std::vector<double>& sc,
                   const NmsParams& p, SoftNmsWorkspace& ws, SoftNmsAlgorithm algorithm = SoftNmsAlgorithm::kAuto,
                   const int32_t* cancel = nullptr) {
  const int64_t n = static_cast<int64_t>(s.size());
  Picks out{0, std::vector<int64_t>(n), std::vector<double>(n)};
  out.count = soft_nms(s.data(), e.data(), sc.data(), n, p, out.keep.data(), out.scores.data(), ws, cancel, algorithm);
  return out;
}

}  // namespace

HF_TEST(for_each_run_hand_example_and_edges) {
  const bool mask[] = {true, true, false, true, false, false, true};
  std::vector<int64_t> runs;
  const auto collect = [&](const bool* m, int64_t length) {
    runs.clear();
    return for_each_run(
        length, [&](int64_t t) { return m[t]; }, [&](int64_t s, int64_t e) { runs.insert(runs.end(), {s, e}); });
  };
  HF_EXPECT(collect(mask, 7) == 3 && runs == std::vector<int64_t>({0, 2, 3, 4, 6, 7}));
  HF_EXPECT(collect(mask, 0) == 0 && runs.empty());  // empty row
  HF_EXPECT(collect(mask, 2) == 1 && runs == std::vector<int64_t>({0, 2}));  // cut by the length
  const bool none[] = {false, false, false};
  HF_EXPECT(collect(none, 3) == 0);
  HF_EXPECT(collect(mask + 6, 1) == 1 && runs == std::vector<int64_t>({0, 1}));
}

HF_TEST(segment_iou_hand_values) {
  HF_EXPECT(segment_iou(0, 4, 2, 6, 0) == 2.0 / 6.0);
  HF_EXPECT(segment_iou(0, 4, 4, 6, 0) == 0.0);            // touching: no overlap
  HF_EXPECT(segment_iou(0, 4, 4, 6, 1) == 1.0 / 7.0);      // legacy: [0..4] and [4..6] share 1 of 7
  HF_EXPECT(segment_iou(1, 3, 1, 3, 0) == 1.0);
  HF_EXPECT(segment_iou(2, 2, 2, 2, 0) == 0.0);            // empty segments never overlap
  HF_EXPECT(segment_iou(2, 2, 2, 2, 1) == 1.0);
  HF_EXPECT(segment_iou(0, 10, 20, 30, 1) == 0.0);
}

HF_TEST(pair_update_rules) {
  NmsParams p;
  p.method = kNmsGaussian;
  p.sigma = 0.5;
  double s = 2.0;
  HF_EXPECT(nms_pair_update(p, 0.0, &s) && s == 2.0);
  HF_EXPECT(nms_pair_update(p, 0.5, &s) && s == 2.0 * std::exp(-0.25 / 0.5));
  p.method = kNmsLinear;
  p.iou_threshold = 0.3;
  s = 1.0;
  HF_EXPECT(nms_pair_update(p, 0.3, &s) && s == 1.0);      // not above the threshold
  HF_EXPECT(nms_pair_update(p, 0.75, &s) && s == 0.25);
  p.method = kNmsHard;
  HF_EXPECT(nms_pair_update(p, 0.3, &s));
  HF_EXPECT(!nms_pair_update(p, 0.31, &s));
}

HF_TEST(oic_score_hand_example) {
  // x = 1..8 (T = 8). Proposal [2, 6): L = 4, inner = (3+4+5+6)/4 = 4.5,
  // o_s = floor(2 - 1) = 1, o_e = min(7, floor(5 + 1)) = 6: outer = {x1, x6} = {2, 7} -> 4.5.
  const float x[] = {1, 2, 3, 4, 5, 6, 7, 8};
  double prefix[9];
  column_prefix_sums(x, 1, 8, prefix);
  HF_EXPECT(prefix[8] == 36.0);
  HF_EXPECT_NEAR(oic_score(prefix, 8, 2, 6, 0.2, 0.5), 0.0 + 0.1, 1e-15);
  // [0, 8): no outer region at all -> outer = 0.
  HF_EXPECT_NEAR(oic_score(prefix, 8, 0, 8, 0.0, 0.0), 4.5, 1e-15);
  // [7, 8) (L = 1): o_s = floor(6.75) = 6 -> {x6} = 7; o_e = min(7, floor(7.25)) = 7 -> right empty.
  HF_EXPECT_NEAR(oic_score(prefix, 8, 7, 8, 0.0, 0.0), 8.0 - 7.0, 1e-15);
  // [1, 3) (L = 2): o_s = max(0, floor(0.5)) = 0 -> {x0} = 1; o_e = floor(2.5) = 2 < e -> right empty.
  HF_EXPECT_NEAR(oic_score(prefix, 8, 1, 3, 0.0, 0.0), 2.5 - 1.0, 1e-15);
  // [3, 5) (L = 2): o_s = floor(2.5) = 2 -> {x2} = 3; o_e = floor(4.5) = 4 < e -> right empty.
  HF_EXPECT_NEAR(oic_score(prefix, 8, 3, 5, 0.0, 0.0), 4.5 - 3.0, 1e-15);
  // [2, 5) (L = 3): o_s = floor(1.25) = 1 -> {x1} = 2; o_e = floor(4.75) = 4 < e: outer = 2.
  HF_EXPECT_NEAR(oic_score(prefix, 8, 2, 5, 0.0, 0.0), 4.0 - 2.0, 1e-15);
  // [1, 7) (L = 6): o_s = floor(-0.5) -> 0 -> {x0} = 1; o_e = min(7, floor(7.5)) = 7 -> {x7} = 8: outer 4.5.
  HF_EXPECT_NEAR(oic_score(prefix, 8, 1, 7, 0.0, 0.0), 4.5 - 4.5, 1e-15);
}

HF_TEST(threshold_proposals_hand_example) {
  const double a[] = {0.9, 0.2, 0.6, 0.7, 0.1, 0.8};
  const float x[] = {1, 0, 1, 1, 0, 1};
  double prefix[7];
  column_prefix_sums(x, 1, 6, prefix);
  HF_EXPECT(threshold_proposals(a, 6, 0.5, nullptr, 0.2, 1.0, 3, 4, nullptr, nullptr) == 3);
  std::vector<int64_t> ids(12);
  std::vector<double> sc(3);
  HF_EXPECT(threshold_proposals(a, 6, 0.5, prefix, 0.2, 1.0, 3, 4, ids.data(), sc.data()) == 3);
  const std::vector<int64_t> expected = {3, 4, 0, 1, 3, 4, 2, 4, 3, 4, 5, 6};
  HF_EXPECT(ids == expected);
  // [0,1): outer = [0,0) and [1, min(5, floor(0.25))] = [1, 0] empty -> 0; score 1 + 0.2.
  HF_EXPECT_NEAR(sc[0], 1.2, 1e-15);
  HF_EXPECT(threshold_proposals(a, 6, 0.95, prefix, 0.2, 1.0, 0, 0, ids.data(), sc.data()) == 0);
  HF_EXPECT(threshold_proposals(a, 0, 0.0, prefix, 0.2, 1.0, 0, 0, ids.data(), sc.data()) == 0);
}

HF_TEST(soft_nms_hand_example) {
  // Three segments: B overlaps A with IoU 1/2 (length 4, shift 2 -> 2/6 = 1/3), C far.
  const double s[] = {0, 2, 20}, e[] = {4, 6, 24}, sc[] = {0.9, 0.8, 0.5};
  NmsParams p;
  p.method = kNmsGaussian;
  p.sigma = 0.3;
  SoftNmsWorkspace ws;
  int64_t keep[3];
  double kept[3];
  HF_EXPECT(soft_nms(s, e, sc, 3, p, keep, kept, ws) == 3);
  const double b = 0.8 * std::exp(-(1.0 / 9.0) / 0.3);  // 0.552 > 0.5
  HF_EXPECT(keep[0] == 0 && keep[1] == 1 && keep[2] == 2);
  HF_EXPECT(kept[0] == 0.9 && kept[1] == b && kept[2] == 0.5);
  p.method = kNmsHard;
  p.iou_threshold = 0.3;
  HF_EXPECT(soft_nms(s, e, sc, 3, p, keep, kept, ws) == 2);
  HF_EXPECT(keep[0] == 0 && keep[1] == 2);
  p.min_score = 0.6;
  HF_EXPECT(soft_nms(s, e, sc, 3, p, keep, kept, ws) == 1);
  // Ties go to the lowest index.
  const double tie[] = {0.5, 0.5, 0.5};
  p = NmsParams();
  HF_EXPECT(soft_nms(s, e, tie, 3, p, keep, kept, ws) == 3);
  HF_EXPECT(keep[0] == 0 && keep[1] == 2 && keep[2] == 1);
  HF_EXPECT(soft_nms(s, e, sc, 0, p, keep, kept, ws) == 0);
}

// Every CPU algorithm (and the dispatch between them) against the O(n^2) loop: kept
// indices and scores bit for bit.
HF_TEST(soft_nms_algorithms_match_quadratic_on_random_inputs) {
  std::mt19937_64 rng(1234);
  SoftNmsWorkspace ws;  // reused across calls and algorithms on purpose
  int checked = 0;
  const int trials = 800;
  for (int trial = 0; trial < trials; ++trial) {
    // Up to 59 segments (one block of the pair lists), or up to 399 (several blocks).
    const int64_t n = static_cast<int64_t>(rng() % (trial % 4 == 3 ? 400 : 60));
    const bool integer = trial % 3 == 0;  // snippet-like ints: many ties and touching ends
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<double> s(n), e(n), sc(n);
    // Spans of 10 are dense: the dispatch's pair lists decline above 64 pairs per segment.
    const double span = trial % 8 == 7 ? 10.0 : n > 60 ? 400.0 : 50.0;
    for (int64_t i = 0; i < n; ++i) {
      if (integer) {
        s[i] = static_cast<double>(rng() % static_cast<uint64_t>(span * 0.4));
        e[i] = s[i] + static_cast<double>(rng() % 6);
        sc[i] = static_cast<double>(rng() % 5) / 4.0 - (trial % 4 == 1 ? 0.5 : 0.0);
      } else {
        s[i] = span * u(rng);
        e[i] = s[i] + 10.0 * u(rng);
        sc[i] = u(rng) - (trial % 4 == 1 ? 0.5 : 0.0);  // some negative scores
      }
    }
    NmsParams p;
    p.method = trial % 3;
    p.sigma = 0.1 + u(rng);
    p.iou_threshold = u(rng);
    p.offset = trial % 5 == 0 ? 1.0 : 0.0;
    p.min_score = trial % 2 == 0 ? -INFINITY : (u(rng) - 0.5) * 0.5;
    const Picks want = run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kQuadratic);
    bool all_same = true;
    for (const SoftNmsAlgorithm algorithm : {SoftNmsAlgorithm::kAuto, SoftNmsAlgorithm::kPairLists,
                                             SoftNmsAlgorithm::kOverlapSweep, SoftNmsAlgorithm::kLengthBuckets}) {
      if (algorithm == SoftNmsAlgorithm::kLengthBuckets && p.method != kNmsGaussian) continue;
      const bool same = run_soft_nms(s, e, sc, p, ws, algorithm) == want;
      HF_EXPECT(same);
      all_same = all_same && same;
    }
    checked += all_same;
  }
  HF_EXPECT(checked == trials);
}

HF_TEST(soft_nms_loops_stop_when_cancelled) {
  // Dense segments (every pair overlaps) through each selection loop: the per-overlap
  // sweep (hard, linear, pruned gaussian), the length buckets (gaussian) and the O(n^2)
  // loop. A set flag stops them; a clear one changes nothing.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t n = 2500;
  std::vector<double> s(n), e(n), sc(n);
  for (int64_t i = 0; i < n; ++i) {
    s[i] = 10.0 * u(rng);
    e[i] = s[i] + 20.0 + 10.0 * u(rng);
    sc[i] = u(rng);
  }
  SoftNmsWorkspace ws;
  for (int variant = 0; variant < 4; ++variant) {
    NmsParams p;
    p.method = variant < 3 ? static_cast<int64_t>(variant) : static_cast<int64_t>(kNmsGaussian);  // 3: gaussian + floor
    p.min_score = variant == 3 ? 0.01 : -INFINITY;
    int32_t flag = 1;
    HF_EXPECT(run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kAuto, &flag).count == kNmsCancelled);
    HF_EXPECT(run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kQuadratic, &flag).count == kNmsCancelled);
    flag = 0;
    const Picks a = run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kAuto, &flag);
    HF_EXPECT(a.count > 0 && a == run_soft_nms(s, e, sc, p, ws));
  }
}

HF_TEST(decay_exp_is_exp_within_two_ulp) {
  HF_EXPECT(decay_exp(0.0) == 1.0 && decay_exp(-0.0) == 1.0);
  HF_EXPECT(decay_exp(-std::log(2.0)) == 0.5);
  HF_EXPECT(decay_exp(-746.0) == 0.0 && decay_exp(-1e300) == 0.0);
  int bad = 0;
  for (int i = 0; i <= 70000; ++i) {
    const double x = -i * 0.01;  // down to -700
    const double want = std::exp(x);
    const double ulp = std::nextafter(want, 1.0) - want;
    bad += std::fabs(decay_exp(x) - want) > 2 * ulp;
  }
  HF_EXPECT(bad == 0);
}

HF_TEST(soft_nms_sweep_matches_quadratic_on_large_inputs) {
  // Several blocks, trees of several levels, compactions, long segments reaching far.
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::exponential_distribution<double> ex(1.0 / 20.0);
  SoftNmsWorkspace ws;
  for (int64_t method = 0; method < 3; ++method) {
    const int64_t n = 3000;
    std::vector<double> s(n), e(n), sc(n);
    for (int64_t i = 0; i < n; ++i) {
      s[i] = 1000.0 * u(rng);
      e[i] = s[i] + ex(rng) * (i % 97 == 0 ? 20.0 : 1.0);
      sc[i] = u(rng) - (method == 1 ? 0.2 : 0.0);
    }
    NmsParams p;
    p.method = method;
    p.iou_threshold = 0.3;
    p.min_score = method == 2 ? 0.01 : -INFINITY;
    const Picks want = run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kQuadratic);
    HF_EXPECT(want.count > 0 && run_soft_nms(s, e, sc, p, ws) == want);
  }
}

HF_TEST(soft_nms_gaussian_sweep_matches_quadratic_on_mixed_lengths) {
  // The length-bucketed gaussian path (min_score <= 0): negative scores (decays raise
  // them), zero-length and very long segments, repeated integer starts, offset 0 and 1.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::exponential_distribution<double> ex(1.0 / 20.0);
  SoftNmsWorkspace ws;
  for (int variant = 0; variant < 5; ++variant) {
    const int64_t n = variant == 3 ? 700 : 2500;
    std::vector<double> s(n), e(n), sc(n);
    for (int64_t i = 0; i < n; ++i) {
      s[i] = variant % 2 == 0 ? std::floor(800.0 * u(rng)) : 800.0 * u(rng) - 400.0;
      const double len = i % 13 == 0 ? 0.0 : ex(rng) * (i % 101 == 0 ? 30.0 : 1.0);
      e[i] = s[i] + (variant % 2 == 0 ? std::floor(len) : len);
      if (variant == 4) {  // huge coordinates: spans and lengths that overflow
        s[i] = (u(rng) - 0.5) * 1.6e308;
        e[i] = i % 7 == 0 ? s[i] : std::min(1.7e308, s[i] + u(rng) * 1e308);
      }
      sc[i] = u(rng) - (variant >= 2 ? 0.5 : 0.0);
    }
    NmsParams p;
    p.method = kNmsGaussian;
    p.sigma = 0.3 + 0.2 * variant;
    p.offset = variant == 2 ? 1.0 : 0.0;
    p.min_score = variant == 1 ? 0.0 : -INFINITY;
    const Picks want = run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kQuadratic);
    HF_EXPECT(want.count > 0 && run_soft_nms(s, e, sc, p, ws) == want);
    HF_EXPECT(run_soft_nms(s, e, sc, p, ws, SoftNmsAlgorithm::kLengthBuckets) == want);
  }
}

HF_TEST(video_class_scores_flags_non_finite_values) {
  // The kernel reports NaN / +-inf anywhere (float and double), and finite inputs as such.
  VideoScoresWorkspace ws;
  double out[2];
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY};
  for (const float bad : specials) {
    std::vector<float> f(30 * 3, 0.5f);
    std::vector<double> d(30 * 3, -0.25);
    HF_EXPECT(video_class_scores(f.data(), 30, 3, 10, ws, out));
    HF_EXPECT(video_class_scores(d.data(), 30, 3, 10, ws, out));
    f[17 * 3 + 1] = bad;
    d[29 * 3 + 2] = static_cast<double>(bad);
    HF_EXPECT(!video_class_scores(f.data(), 30, 3, 10, ws, out));
    HF_EXPECT(!video_class_scores(d.data(), 30, 3, 10, ws, out));
  }
  std::vector<double> extremes = {-1.7976931348623157e308, 1.7976931348623157e308, -0.0, 0.0, 5e-324, -5e-324};
  HF_EXPECT(video_class_scores(extremes.data(), 3, 2, 10, ws, out));
}

HF_TEST(video_class_scores_hand_example) {
  // T = 20, r = 10 -> k = 2. Class 0 tops at (3, 1) -> 2; class 1 -> 0; background -> ln 2.
  std::vector<float> cas(20 * 3, 0.0f);
  cas[4 * 3 + 0] = 3.0f;
  cas[9 * 3 + 0] = 1.0f;
  cas[0 * 3 + 0] = 0.5f;
  for (int t = 0; t < 20; ++t) cas[t * 3 + 2] = static_cast<float>(std::log(2.0));
  VideoScoresWorkspace buf;
  double out[2];
  video_class_scores(cas.data(), 20, 3, 10, buf, out);
  const double bg = static_cast<double>(static_cast<float>(std::log(2.0)));
  const double z0 = 1.0, z1 = std::exp(-2.0), z2 = std::exp(bg - 2.0);
  HF_EXPECT_NEAR(out[0], z0 / (z0 + z1 + z2), 1e-15);
  HF_EXPECT_NEAR(out[1], z1 / (z0 + z1 + z2), 1e-15);
  // Long column with ties (the bisection ends on a tied k-th value): k = 30 of T = 300, values 0..9 repeated.
  std::vector<double> col(300 * 2);
  for (int t = 0; t < 300; ++t) {
    col[2 * t] = t % 10;
    col[2 * t + 1] = 0.0;
  }
  video_class_scores(col.data(), 300, 2, 10, buf, out);
  const double z = std::exp(-9.0);  // top 30 of class 0 are all 9s; background 0
  HF_EXPECT_NEAR(out[0], 1.0 / (1.0 + z), 1e-15);
}

HF_TEST(level_runs_match_the_runs_of_each_threshold) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t T = static_cast<int64_t>(rng() % 80), H = 1 + static_cast<int64_t>(rng() % 6);
    std::vector<float> a(T);
    for (auto& x : a) x = trial % 2 ? static_cast<float>(std::round(u(rng) * 10) / 10) : static_cast<float>(u(rng));
    std::vector<double> thr(H);
    for (auto& t : thr) t = std::round(u(rng) * 10) / 10;  // ties with the attention and between thresholds
    std::sort(thr.begin(), thr.end());
    std::vector<int32_t> level(T);
    threshold_levels(a.data(), T, thr.data(), H, level.data());
    std::vector<std::vector<int64_t>> got(H);
    std::vector<int64_t> open(H);
    for_each_level_run(level.data(), T, open.data(), [&](int64_t i, int64_t s, int64_t e) {
      got[i].push_back(s);
      got[i].push_back(e);
    });
    for (int64_t i = 0; i < H; ++i) {
      std::vector<int64_t> want;
      for_each_run(
          T, [&](int64_t t) { return static_cast<double>(a[t]) > thr[i]; },
          [&](int64_t s, int64_t e) {
            want.push_back(s);
            want.push_back(e);
          });
      HF_EXPECT(got[i] == want);
    }
  }
  const double nan = std::nan(""), inf = INFINITY;
  const double good[] = {0.0, -1.0, 3.5}, bad1[] = {0.0, nan}, bad2[] = {-inf, 1.0};
  HF_EXPECT(all_finite(good, 3) && !all_finite(bad1, 2) && !all_finite(bad2, 2));
}
