// System-library umbrella for hdf5; flags come from pkg-config (see Package.swift).
#include <hdf5.h>
