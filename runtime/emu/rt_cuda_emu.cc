// runtime/emu/rt_cuda_emu.cc: the CUDA backend compiled as host C++ against the CUDA emulator (cuda_emu.h),
// for the tests: the same source as the GPU build, kernels included.
#include "cuda_emu.h"

#include <tuple>

#include "../rt_cuda.cu"
