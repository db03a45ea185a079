// Which layout a dataset file holds, read before choosing how to open it (`train` picks the
// task from it: `tokens` → language model, `sequences` → sequence task, `pairs` → encoder–decoder, `trees` → recursive network).
/// The `kind` attribute of the dataset at `path` (`tokens`, `sequences`, `pairs` or `trees`), after the checks
/// every dataset open makes (regular file, HDF5, format name and version).
public func datasetKind(_ path: String) throws -> String {
    let file = try openDatasetFile(path, kind: nil, versions: 1...DatasetFormat.newestVersion)
    return try requireString(file, "kind")
}
