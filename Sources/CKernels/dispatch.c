// Runtime selection of the widest instruction set this CPU supports.
#include "CKernels.h"

const char *uk_isa_name(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
    return "generic";
}
