// Compiled so that SwiftPM tracks edits to MPIShim.h (a header-only target is not rebuilt reliably).
#include "MPIShim.h"
