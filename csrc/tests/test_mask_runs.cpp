#include <vector>

#include "ops/mask_runs/mask_runs.h"
#include "test_framework.h"

using himnet_fast::mask_runs_row;

HF_TEST(mask_runs_hand_example) {
  const bool mask[] = {true, true, false, true, false, false, true};
  std::vector<int64_t> runs(3 * 3);
  HF_EXPECT(mask_runs_row(mask, 7, 5, nullptr) == 3);
  HF_EXPECT(mask_runs_row(mask, 7, 5, runs.data()) == 3);
  const std::vector<int64_t> expected = {5, 0, 2, 5, 3, 4, 5, 6, 7};
  HF_EXPECT(runs == expected);
}

HF_TEST(mask_runs_respects_length_and_edges) {
  const bool mask[] = {true, true, true, true};
  std::vector<int64_t> runs(3);
  HF_EXPECT(mask_runs_row(mask, 0, 0, nullptr) == 0);  // empty row
  HF_EXPECT(mask_runs_row(mask, 2, 0, runs.data()) == 1);
  HF_EXPECT(runs[1] == 0 && runs[2] == 2);
  const bool none[] = {false, false, false};
  HF_EXPECT(mask_runs_row(none, 3, 0, nullptr) == 0);
  const bool single[] = {true};
  HF_EXPECT(mask_runs_row(single, 1, 0, runs.data()) == 1);
  HF_EXPECT(runs[1] == 0 && runs[2] == 1);
}
