# Sourced by the launch scripts: OpenBLAS settings that must be in place before the library loads.
# One BLAS thread per process (per MPI rank); the AVX-512 kernels on CPUs that have AVX-512, which
# Debian's OpenBLAS 0.3.21 does not pick by itself on Sapphire Rapids. A user's own values win.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
# mpirun refuses to run as root without these; harmless otherwise.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# Builds the release `unroll` binary quietly; prints the compiler's output only on failure.
build_release() {
  local log
  log=$(mktemp)
  if ! swift build -c release --product unroll >"$log" 2>&1; then
    cat "$log"; rm -f "$log"; echo "build failed" >&2; return 1
  fi
  rm -f "$log"
}
