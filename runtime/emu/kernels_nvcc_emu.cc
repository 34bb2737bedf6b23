// runtime/emu/kernels_nvcc_emu.cc: a generated program's own build of its kernels (kernels_nvcc.cu, which nvcc
// compiles into the program for the GPU) compiled as host C++ against the CUDA emulator instead, for the tests
// (avgen_add_emu(NAME NVCC_KERNELS)): the include path names the generated folder.
#define AVGEN_CUDA_EMU 1
#include "cuda_emu.h"

#include "kernels_nvcc.cu"
