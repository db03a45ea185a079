// Getters for Open MPI's handle macros, which Swift cannot import (they take the address of an
// incomplete struct). Each getter is imported under the macro's own name, e.g. `MPI_COMM_WORLD`.
#ifndef MPISHIM_H
#define MPISHIM_H
#include <mpi.h>
// Stringize here, not in a helper macro: forwarding `name` would expand it first.
#define CMPI_HANDLE(type, name) \
  static inline type _Nonnull cmpi_##name(void) __attribute__((swift_name("getter:" #name "()"))); \
  static inline type _Nonnull cmpi_##name(void) { return name; }
CMPI_HANDLE(MPI_Comm, MPI_COMM_WORLD)
CMPI_HANDLE(MPI_Comm, MPI_COMM_SELF)
CMPI_HANDLE(MPI_Datatype, MPI_FLOAT)
CMPI_HANDLE(MPI_Datatype, MPI_DOUBLE)
CMPI_HANDLE(MPI_Datatype, MPI_INT)
CMPI_HANDLE(MPI_Datatype, MPI_INT32_T)
CMPI_HANDLE(MPI_Datatype, MPI_INT64_T)
CMPI_HANDLE(MPI_Datatype, MPI_UINT8_T)
CMPI_HANDLE(MPI_Datatype, MPI_UINT64_T)
CMPI_HANDLE(MPI_Datatype, MPI_BYTE)
CMPI_HANDLE(MPI_Datatype, MPI_CHAR)
CMPI_HANDLE(MPI_Op, MPI_SUM)
CMPI_HANDLE(MPI_Op, MPI_MAX)
CMPI_HANDLE(MPI_Op, MPI_MIN)
CMPI_HANDLE(MPI_Op, MPI_BOR)
CMPI_HANDLE(MPI_Op, MPI_LOR)
CMPI_HANDLE(MPI_Errhandler, MPI_ERRORS_RETURN)
CMPI_HANDLE(MPI_Errhandler, MPI_ERRORS_ARE_FATAL)
CMPI_HANDLE(void *, MPI_IN_PLACE)
static inline MPI_Status * _Nullable cmpi_status_ignore(void) __attribute__((swift_name("getter:MPI_STATUS_IGNORE()")));
static inline MPI_Status * _Nullable cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status * _Nullable cmpi_statuses_ignore(void) __attribute__((swift_name("getter:MPI_STATUSES_IGNORE()")));
static inline MPI_Status * _Nullable cmpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Request _Nonnull cmpi_request_null(void) __attribute__((swift_name("getter:MPI_REQUEST_NULL()")));
static inline MPI_Request _Nonnull cmpi_request_null(void) { return MPI_REQUEST_NULL; }
#undef CMPI_HANDLE
#endif
