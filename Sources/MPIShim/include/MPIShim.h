// Getters for Open MPI's handle macros, which Swift cannot import (they take the address of an
// incomplete struct). Each getter is imported under the macro's own name, e.g. `MPI_COMM_WORLD`.
// Also the process guards of an MPI rank (ProcessGuards.c): death with the launcher, and the
// SIGTERM/SIGINT handler with its watchdog thread, which need async-signal-safe C.
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

/// Makes the kernel SIGKILL this process when its parent (the launcher: mpirun, orted,
/// slurmstepd) dies, via prctl(PR_SET_PDEATHSIG), which Swift cannot call (variadic). If the parent
/// already died before the call took effect, kills this process at once. Returns 0, or -1 with
/// errno set if prctl failed.
int unroll_kill_on_parent_death(void);

/// Installs SIGTERM/SIGINT handlers (sigaction, SA_RESTART) that count the signals, and starts a
/// watchdog thread: `grace_seconds` after the first signal, or at once on a second one, it prints one
/// line to stderr (prefixed `rank_prefix`, e.g. "[rank 1] ") saying what the process was waiting in,
/// and ends the process with _exit(128 + signal). A process that finishes in time is not touched.
/// Calling it again only updates the grace and prefix. Returns 0, or an errno value.
int unroll_install_stop_signals(double grace_seconds, const char *_Nonnull rank_prefix);

/// Number of SIGTERM/SIGINT received since `unroll_install_stop_signals` (0 = none).
int unroll_stop_signal_count(void);

/// Names the wait the calling (MPI) thread is blocked in, for the watchdog's message; NULL when it
/// is not waiting. The string must live for the whole process (a Swift StaticString does).
void unroll_set_current_wait(const char *_Nullable what);
#endif
