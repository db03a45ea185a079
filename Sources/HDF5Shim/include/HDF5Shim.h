// Getters for HDF5's type, property-list and flag macros, which Swift cannot import (they call
// H5open() or H5check_version() inside the expansion), and H5P_DEFAULT/H5E_DEFAULT as hid_t.
// Also a fast HDF5-compatible Fletcher32 (Fletcher32.c) for writers that checksum chunks themselves,
// early writeback of a file's dirty pages (Writeback.c), and close-on-exec for a file's descriptor
// (Descriptor.c), and the file-format bounds of the files Unroll writes (HDF5Shim.c).
#ifndef HDF5SHIM_H
#define HDF5SHIM_H
#include <hdf5.h>
#define CH5_CONST(type, name) \
  static inline type ch5_##name(void) __attribute__((swift_name("getter:" #name "()"))); \
  static inline type ch5_##name(void) { return name; }
CH5_CONST(hid_t, H5T_NATIVE_FLOAT)  CH5_CONST(hid_t, H5T_NATIVE_DOUBLE) CH5_CONST(hid_t, H5T_NATIVE_INT)
CH5_CONST(hid_t, H5T_NATIVE_INT32)  CH5_CONST(hid_t, H5T_NATIVE_INT64)  CH5_CONST(hid_t, H5T_NATIVE_UINT8)
CH5_CONST(hid_t, H5T_NATIVE_UINT32) CH5_CONST(hid_t, H5T_NATIVE_UINT64) CH5_CONST(hid_t, H5T_NATIVE_HSIZE)
CH5_CONST(hid_t, H5T_C_S1)
CH5_CONST(hid_t, H5T_STD_U8LE)      CH5_CONST(hid_t, H5T_STD_I32LE)     CH5_CONST(hid_t, H5T_STD_I64LE)
CH5_CONST(hid_t, H5T_STD_U32LE)     CH5_CONST(hid_t, H5T_STD_U64LE)
CH5_CONST(hid_t, H5T_IEEE_F32LE)    CH5_CONST(hid_t, H5T_IEEE_F64LE)
CH5_CONST(hid_t, H5P_FILE_CREATE)   CH5_CONST(hid_t, H5P_FILE_ACCESS)   CH5_CONST(hid_t, H5P_DATASET_CREATE)
CH5_CONST(hid_t, H5P_DATASET_XFER)  CH5_CONST(hid_t, H5P_LINK_CREATE)   CH5_CONST(hid_t, H5P_DATASET_ACCESS)
CH5_CONST(unsigned, H5F_ACC_RDONLY) CH5_CONST(unsigned, H5F_ACC_RDWR)
CH5_CONST(unsigned, H5F_ACC_TRUNC)  CH5_CONST(unsigned, H5F_ACC_EXCL)
CH5_CONST(hsize_t, H5S_UNLIMITED)   CH5_CONST(size_t, H5T_VARIABLE)
// These import as Int32 otherwise; re-declare as hid_t and hide the macros from Swift.
CH5_CONST(hid_t, H5P_DEFAULT)
CH5_CONST(hid_t, H5E_DEFAULT)
#undef H5P_DEFAULT
#undef H5E_DEFAULT
#undef CH5_CONST

/// HDF5's Fletcher32 checksum of `nbytes` bytes (the value its fletcher32 filter appends to a
/// chunk, little-endian), computed several times faster than HDF5's own implementation.
uint32_t ch5_fletcher32(const void *data, size_t nbytes);

/// Starts writeback of `file`'s dirty pages without waiting for it (Linux, sec2 driver; see
/// Writeback.c). Returns 0, or -1 where not supported or on error: only an optimisation.
int ch5_start_writeback(hid_t file);

/// The file descriptor behind `file` if it was opened with the sec2 (default) driver, else -1.
int ch5_file_descriptor(hid_t file);

/// Sets FD_CLOEXEC on `file`'s descriptor (sec2 driver; see Descriptor.c). Returns 0 on success,
/// 1 if the file has no plain descriptor (another driver), -1 if fcntl failed (errno set).
int ch5_set_close_on_exec(hid_t file);

/// Sets the file-access list `fapl` to write the HDF5 1.10 file format (low bound
/// H5F_LIBVER_V110, high bound H5F_LIBVER_LATEST; the 1.8 format where the library predates
/// 1.10): superblock v3, object headers v2 and the newer chunk indexes, all with checksums.
/// Returns H5Pset_libver_bounds' result.
herr_t ch5_use_checksummed_format(hid_t fapl);
#endif
