// The operating-system descriptor behind an HDF5 file opened with the default (sec2) driver, and
// close-on-exec for it. HDF5 opens files without O_CLOEXEC and holds an flock on them; a child
// that a library forks and execs (Open MPI's singleton MPI_Init starts `orted` this way) would
// otherwise inherit the descriptor, and the lock with it, for the child's whole life.
#include <fcntl.h>
#include "HDF5Shim.h"

int ch5_file_descriptor(hid_t file) {
    hid_t fapl = H5Fget_access_plist(file);
    if (fapl < 0) return -1;
    void *handle = NULL;
    // Only sec2's handle is a plain file descriptor.
    int ok = H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle != NULL;
    H5Pclose(fapl);
    return ok ? *(int *)handle : -1;
}

int ch5_set_close_on_exec(hid_t file) {
    int fd = ch5_file_descriptor(file);
    if (fd < 0) return 1;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return (flags & FD_CLOEXEC) ? 0 : fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}
