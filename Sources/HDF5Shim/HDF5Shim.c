// Compiled so that SwiftPM tracks edits to HDF5Shim.h; also the few helpers that need C macros.
#include "HDF5Shim.h"

herr_t ch5_use_checksummed_format(hid_t fapl) {
#if H5_VERSION_GE(1, 10, 0)
    return H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
#else
    return H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
#endif
}
