// runtime/emu/rt_cuda_emu_trace.cc: the CUDA backend on the CUDA emulator, compiled with -fsanitize=thread's
// instrumentation for the tracing build (emu_trace.cc; CMake gives this file, not rt_cuda_emu.cc, the flag).
#include "rt_cuda_emu.cc"
