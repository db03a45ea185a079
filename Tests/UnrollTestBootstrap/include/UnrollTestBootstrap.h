// Process start-up of the test bundle: MPI is initialised before any test runs (see Bootstrap.c).
#ifndef UNROLL_TEST_BOOTSTRAP_H
#define UNROLL_TEST_BOOTSTRAP_H

/// 1 if the load-time constructor initialised MPI (or found it initialised), 0 if it was skipped
/// (UNROLL_TEST_NO_MPI_BOOTSTRAP set), -1 if MPI_Init_thread failed.
int unroll_test_bootstrap_status(void);

#endif
