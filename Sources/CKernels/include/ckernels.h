#ifndef CKERNELS_H
#define CKERNELS_H
#include <stdint.h>
#include <stddef.h>
/* Filled by the kernels work. */
int ck_cpu_features(void);
#endif
