// System-library umbrella for mpi; flags come from pkg-config (see Package.swift).
#include <mpi.h>
