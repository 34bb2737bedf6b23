/* What CUDA can do here: the device count through the statically linked CUDA runtime, which loads the
 * driver at run time, so every binary starts on a machine without a GPU and can say why it has none. */
#ifndef AVGEN_RT_DEVICE_H
#define AVGEN_RT_DEVICE_H
#include <stddef.h>

typedef struct {
    char name[256];
    int major, minor, sms;
    size_t memory;
} rt_device_info;

/* Number of usable CUDA devices (>= 0); on 0, why holds one sentence saying why (no driver, no device,
 * or built without CUDA). */
int rt_cuda_devices(rt_device_info *out, int max, char *why, size_t whylen);
#endif
