// Hand-vectorised float kernels with runtime CPU dispatch (AVX-512, AVX2, portable C).
#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>

/// Name of the instruction set the dispatcher picked ("avx512", "avx2" or "generic").
const char *uk_isa_name(void);

#endif
