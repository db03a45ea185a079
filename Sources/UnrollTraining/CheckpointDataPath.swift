// Where the dataset a checkpoint was trained on is, for `eval` and `sample` without `--data`.
// A checkpoint stores the data path as it was given to `train`, so a relative path is relative to
// the directory training ran in, which the checkpoint does not record: it is looked for in the
// current directory, then in the checkpoint's directory and each directory above it.
import Foundation

/// Resolves the data path stored in a checkpoint (its `data_file` attribute).
public enum CheckpointDataPath {
    /// The file to read for checkpoint `checkpoint` whose stored data path is `stored`. An
    /// absolute path is used as is. A relative one is tried, in this order, and the first place
    /// where something exists wins:
    /// 1. the current directory (running from where training ran, the common case and what
    ///    earlier versions did, reads the same file);
    /// 2. the checkpoint file's directory, then each of its parents up to `/` (training usually
    ///    ran in a directory above its `--checkpoint-dir`: `--data data/x.h5 --checkpoint-dir
    ///    runs/a` is found from `runs/a/step-….h5` two levels up, from any current directory).
    /// Callers check that the file found has the checkpoint's vocabulary.
    /// - Parameter exists: file test (injectable for tests); defaults to "something is at path".
    /// - Throws: `TrainingError.data` naming the stored path and the places tried.
    public static func resolve(stored: String, checkpoint: String,
                               exists: (String) -> Bool = { access($0, F_OK) == 0 }) throws -> String {
        if stored.hasPrefix("/") || exists(stored) { return stored }
        let cwd = FileManager.default.currentDirectoryPath
        let absolute = checkpoint.hasPrefix("/") ? checkpoint : (cwd as NSString).appendingPathComponent(checkpoint)
        var directory = ((absolute as NSString).deletingLastPathComponent as NSString).standardizingPath
        let nearest = (directory as NSString).appendingPathComponent(stored)
        while true {
            let candidate = (directory as NSString).appendingPathComponent(stored)
            if exists(candidate) { return candidate }
            guard directory != "/", !directory.isEmpty else { break }
            directory = (directory as NSString).deletingLastPathComponent
        }
        throw TrainingError.data("\(checkpoint): data file \(stored) (relative, as given to train) not found in the current "
                                 + "directory (\((cwd as NSString).appendingPathComponent(stored))) nor in the checkpoint's "
                                 + "directory or above (\(nearest), …); pass --data")
    }
}
