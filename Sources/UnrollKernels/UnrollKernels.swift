// UnrollKernels
