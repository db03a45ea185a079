// A naive dense solver in Double for tests that check the LAPACK ridge solve and the ESN readout
// against an independent computation.

/// x (n, m) solving a x = b for a (n, n) and b (n, m), row-major, by Gauss–Jordan elimination with
/// partial pivoting in Double. - Precondition: a is non-singular.
public func gaussJordanSolve(_ a: [Double], _ b: [Double], n: Int, m: Int) -> [Double] {
    var a = a, b = b
    for col in 0..<n {
        var pivot = col
        for r in col..<n where abs(a[r * n + col]) > abs(a[pivot * n + col]) { pivot = r }
        for j in 0..<n { a.swapAt(col * n + j, pivot * n + j) }
        for j in 0..<m { b.swapAt(col * m + j, pivot * m + j) }
        for r in 0..<n where r != col {
            let factor = a[r * n + col] / a[col * n + col]
            for j in 0..<n { a[r * n + j] -= factor * a[col * n + j] }
            for j in 0..<m { b[r * m + j] -= factor * b[col * m + j] }
        }
    }
    return (0..<(n * m)).map { b[$0] / a[($0 / m) * n + $0 / m] }
}
