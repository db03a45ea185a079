// Finding a Python for the interop tests of export, --init-from safetensors and TensorBoard: one
// that imports the given modules, from $UNROLL_TORCH_PYTHON, <repo>/.venv-torch or python3. Tests
// without one print "SKIPPED name: reason" and return (like CheckpointTorchInteropTests).
import Foundation

enum InteropPython {
    /// A Python that imports `modules` (comma-separated, as in an import statement), or the reason
    /// there is none. Probed once per module list and test process.
    static func find(_ modules: String) -> (path: String?, reason: String) {
        cache.withLock { cached in
            if let hit = cached[modules] { return hit }
            let found = probe(modules)
            cached[modules] = found
            return found
        }
    }

    private static let cache = Mutex<[String: (path: String?, reason: String)]>([:])

    private static func probe(_ modules: String) -> (path: String?, reason: String) {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["UNROLL_TORCH_PYTHON"], !env.isEmpty { candidates.append(env) }
        candidates.append(CheckpointFixtures.packageRoot + "/.venv-torch/bin/python")
        candidates.append("/usr/bin/python3")
        var tried: [String] = []
        for p in candidates {
            guard FileManager.default.isExecutableFile(atPath: p) else {
                tried.append("\(p) (absent)")
                continue
            }
            do {
                let (status, _) = try CheckpointTorchInteropTests.run(p, ["-c", "import \(modules)"])
                if status == 0 { return (p, "") }
                tried.append("\(p) (no \(modules))")
            } catch {
                tried.append("\(p) (cannot run: \(error))")
            }
        }
        return (nil, "no Python with \(modules): tried " + tried.joined(separator: ", ") + "; set UNROLL_TORCH_PYTHON")
    }

    /// Tests/Reference/safetensors_interop.py.
    static var script: String { CheckpointFixtures.packageRoot + "/Tests/Reference/safetensors_interop.py" }
}

/// A lock around a value (Synchronization's Mutex needs macOS 15; this builds everywhere).
final class Mutex<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
