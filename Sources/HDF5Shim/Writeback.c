// Early writeback for files written through HDF5's default (sec2) driver: asks Linux to start
// writing the file's dirty pages to storage without waiting (sync_file_range), so that a writer
// which fsyncs at the end overlaps the device's work with producing the rest of the file. In C
// because Swift's Glibc module does not export the GNU-only sync_file_range.
#define _GNU_SOURCE
#include <fcntl.h>
#include "HDF5Shim.h"

int ch5_start_writeback(hid_t file) {
#if defined(__linux__)
    hid_t fapl = H5Fget_access_plist(file);
    if (fapl < 0) return -1;
    void *handle = NULL;
    // Only sec2's handle is a plain file descriptor.
    int ok = H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle != NULL;
    H5Pclose(fapl);
    return ok ? sync_file_range(*(int *)handle, 0, 0, SYNC_FILE_RANGE_WRITE) : -1;
#else
    (void)file;
    return -1;
#endif
}
