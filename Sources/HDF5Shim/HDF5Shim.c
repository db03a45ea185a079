// Compiled so that SwiftPM tracks edits to HDF5Shim.h.
#include "HDF5Shim.h"
