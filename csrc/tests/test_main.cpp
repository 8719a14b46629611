#include "test_framework.h"

int main() {
  int ran = 0;
  for (const auto& c : hf_test::registry()) {
    const int before = hf_test::failures();
    c.body();
    std::printf("%s %s\n", hf_test::failures() == before ? "PASS" : "FAIL", c.name.c_str());
    ++ran;
  }
  std::printf("%d tests, %d failed expectations\n", ran, hf_test::failures());
  return hf_test::failures() == 0 && ran > 0 ? 0 : 1;
}
