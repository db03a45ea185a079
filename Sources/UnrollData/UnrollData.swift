// UnrollData: what this module owns (file formats: DatasetFormat.md beside this file).
//
// - HDF5.swift: the typed HDF5 wrapper (H5File, H5Group, H5Dataset, attributes). UnrollData is the
//   only module that imports HDF5Shim; other modules use this wrapper (e.g. for checkpoints).
// - AtomicFile.swift: temp file + fsync + rename + directory fsync for every file written.
// - TokenDataset.swift (layout `tokens` v1), SequenceSetWriter.swift + SequenceSet.swift (layout
//   `sequences` v2, v1 read): dataset files (DatasetFormat.md), writers and
//   validating readers; PairSetWriter.swift + PairSet.swift (layout `pairs`: source → target); TreeSetWriter.swift +
//   TreeSet.swift (layout `trees`: binary trees for recursive networks).
// - TextPreparation.swift, Synthetic.swift, SequencePreparation.swift, NumPy.swift, Random.swift,
//   SHA256.swift, PairPreparation.swift, SyntheticPairs.swift, SyntheticTrees.swift: `unroll prepare`.
// - Bleu.swift: corpus BLEU-4 from summable counts (pure Swift).
// - StreamReaders.swift: sharded training windows (batchify), evaluation streams, read-ahead.
// - Inspection.swift: `unroll inspect`.
//
// Must not import MPI, BLAS or the training code: Foundation, HDF5Shim and ZIPFoundation (.npz) only.
