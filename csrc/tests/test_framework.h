// A minimal self-registering test harness for the torch-free algorithm tests.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace hf_test {

struct Case {
  std::string name;
  std::function<void()> body;
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

inline int& failures() {
  static int count = 0;
  return count;
}

struct Register {
  Register(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

}  // namespace hf_test

#define HF_TEST(name)                                                  \
  static void name();                                                  \
  static ::hf_test::Register name##_registration(#name, name);         \
  static void name()

#define HF_EXPECT(cond)                                                                  \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::hf_test::failures();                                                           \
    }                                                                                    \
  } while (0)

#define HF_EXPECT_NEAR(a, b, tol) HF_EXPECT(std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= (tol))
