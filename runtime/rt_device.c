/* CUDA device discovery through the static CUDA runtime (never libcuda directly). */
#include "rt_device.h"

#include <stdio.h>
#include <string.h>

#ifdef AVGEN_HAVE_CUDA
#include <cuda_runtime_api.h>

int rt_cuda_devices(rt_device_info *out, int max, char *why, size_t whylen) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, whylen, "no usable CUDA device: %s (%s); the CPU backend still works", cudaGetErrorString(e),
                 cudaGetErrorName(e));
        return 0;
    }
    if (n == 0) {
        snprintf(why, whylen, "no CUDA device is present; the CPU backend still works");
        return 0;
    }
    for (int i = 0; i < n && i < max; i++) {
        struct cudaDeviceProp p;
        memset(&out[i], 0, sizeof out[i]);
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        snprintf(out[i].name, sizeof out[i].name, "%s", p.name);
        out[i].major = p.major, out[i].minor = p.minor, out[i].sms = p.multiProcessorCount;
        out[i].memory = p.totalGlobalMem;
    }
    why[0] = 0;
    return n;
}
#else
int rt_cuda_devices(rt_device_info *out, int max, char *why, size_t whylen) {
    (void)out, (void)max;
    snprintf(why, whylen, "this avgen was built without the CUDA toolkit; the CPU backend still works");
    return 0;
}
#endif
