// Shared helpers for the plain C++/CUDA algorithms (no ATen types here).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define HF_HOST_DEVICE __host__ __device__
#else
#define HF_HOST_DEVICE
#endif
