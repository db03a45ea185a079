// Owned, 64-byte aligned, zero-initialised buffers of plain numbers: the storage behind parameter
// arenas, gradients, optimizer moments and per-window workspaces. Allocation happens here, once;
// kernels only ever see the raw pointers.
//
// Dimension letters used across this module: B batch (streams), T time steps, E input size,
// H hidden size, G gates per cell (LSTM 4, GRU 3, Elman 1), V vocabulary size.

/// A fixed-size, 64-byte aligned, zero-initialised array of `Element`, freed on deinit.
/// Reference semantics: copies share storage (use `copy()` for a deep copy).
public final class AlignedBuffer<Element: Numeric & Sendable>: @unchecked Sendable {
    /// Number of elements.
    public let count: Int
    /// Start of the storage; valid for the lifetime of the buffer.
    public let pointer: UnsafeMutablePointer<Element>

    /// Allocates `count` elements set to zero.
    public init(count: Int) {
        precondition(count >= 0, "AlignedBuffer: negative count \(count)")
        self.count = count
        let bytes = max(1, count) * MemoryLayout<Element>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        pointer = raw.bindMemory(to: Element.self, capacity: max(1, count))
    }

    /// Allocates a buffer holding a copy of `values`.
    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// The whole buffer as a mutable buffer pointer.
    public var buffer: UnsafeMutableBufferPointer<Element> { .init(start: pointer, count: count) }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: .zero, count: count) }

    /// A Swift array copy of the contents.
    public var array: [Element] { Array(buffer) }

    /// A deep copy.
    public func copy() -> AlignedBuffer<Element> {
        let other = AlignedBuffer<Element>(count: count)
        other.pointer.update(from: pointer, count: count)
        return other
    }

    public subscript(i: Int) -> Element {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}

/// The float buffers the models use.
public typealias FloatBuffer = AlignedBuffer<Float>
