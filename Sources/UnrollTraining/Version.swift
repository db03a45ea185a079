// The Unroll version, stamped into checkpoints and compared across ranks at start-up.

/// Unroll's release version.
public enum UnrollVersion {
    public static let string = "0.1.0"
}
