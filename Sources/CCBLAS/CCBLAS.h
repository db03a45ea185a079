// System-library umbrella for openblas; flags come from pkg-config (see Package.swift).
#include <cblas.h>
