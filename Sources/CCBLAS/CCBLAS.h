// System-library umbrella for openblas; flags come from pkg-config (see Package.swift).
#include <cblas.h>

// LAPACK routines OpenBLAS ships (Fortran calling convention: every argument by pointer, column-
// major storage). Declared here because Debian's openblas-dev installs no lapack header next to
// cblas.h. Used by the echo-state readout's ridge solve (UnrollKernels/Ridge.swift) and its tests.

/// Cholesky factorisation A = LLᵀ (uplo 'L') or UᵀU (uplo 'U') of a symmetric positive definite
/// n × n matrix, in place; info > 0: the leading minor of that order is not positive definite.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
/// Solves A X = B with the factor from dpotrf_; B (n × nrhs) is overwritten by X.
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info);
/// Eigenvalues (and optionally eigenvectors) of a general n × n matrix (used by tests to check
/// the reservoir's spectral radius independently of the power iteration).
void dgeev_(const char *jobvl, const char *jobvr, const int *n, double *a, const int *lda, double *wr,
            double *wi, double *vl, const int *ldvl, double *vr, const int *ldvr, double *work,
            const int *lwork, int *info);
