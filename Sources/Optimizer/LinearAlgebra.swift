import Foundation

public enum LinearAlgebraError: Error, CustomStringConvertible, Equatable {
    case notPositiveDefinite(pivot: Int)
    public var description: String {
        switch self {
        case .notPositiveDefinite(let p):
            return "matrix is not positive definite (pivot \(p) ≤ 0); add jitter to the diagonal or remove duplicate inputs"
        }
    }
}

/// Dense symmetric matrix stored row-major; only what the GP needs.
public struct Matrix: Sendable, Equatable {
    public let n: Int
    public var a: [Double]
    public init(n: Int, repeating v: Double = 0) { self.n = n; a = Array(repeating: v, count: n * n) }
    public init(rows: [[Double]]) {
        n = rows.count
        a = rows.flatMap { $0 }
    }
    @inline(__always) public subscript(i: Int, j: Int) -> Double {
        get { a[i * n + j] }
        set { a[i * n + j] = newValue }
    }
}

/// Cholesky factor L (lower triangular, A = L Lᵀ) by the Cholesky–Banachiewicz recurrence.
public func cholesky(_ A: Matrix) throws(LinearAlgebraError) -> Matrix {
    let n = A.n
    var L = Matrix(n: n)
    for i in 0..<n {
        for j in 0...i {
            var s = A[i, j]
            for k in 0..<j { s -= L[i, k] * L[j, k] }
            if i == j {
                guard s > 0, s.isFinite else { throw .notPositiveDefinite(pivot: i) }
                L[i, i] = s.squareRoot()
            } else {
                L[i, j] = s / L[j, j]
            }
        }
    }
    return L
}

/// Cholesky with growing diagonal jitter when A is numerically semi-definite. Returns the factor and
/// the jitter that was added.
public func choleskyWithJitter(_ A: Matrix, maxTries: Int = 8) throws(LinearAlgebraError) -> (Matrix, Double) {
    do { return (try cholesky(A), 0) } catch {}
    var meanDiag = 0.0
    for i in 0..<A.n { meanDiag += A[i, i] }
    meanDiag = max(meanDiag / Double(max(A.n, 1)), 1e-12)
    var jitter = 1e-10 * meanDiag
    var lastError = LinearAlgebraError.notPositiveDefinite(pivot: 0)
    for _ in 0..<maxTries {
        var B = A
        for i in 0..<A.n { B[i, i] += jitter }
        do { return (try cholesky(B), jitter) } catch { lastError = error }
        jitter *= 10
    }
    throw lastError
}

/// Solves L x = b (L lower triangular).
public func forwardSubstitute(_ L: Matrix, _ b: [Double]) -> [Double] {
    var x = b
    for i in 0..<L.n {
        var s = x[i]
        for k in 0..<i { s -= L[i, k] * x[k] }
        x[i] = s / L[i, i]
    }
    return x
}

/// Solves Lᵀ x = b (L lower triangular).
public func backSubstitute(_ L: Matrix, _ b: [Double]) -> [Double] {
    var x = b
    var i = L.n - 1
    while i >= 0 {
        var s = x[i]
        for k in (i + 1)..<L.n { s -= L[k, i] * x[k] }
        x[i] = s / L[i, i]
        i -= 1
    }
    return x
}

/// Standard normal pdf / cdf.
@inline(__always) public func normalPDF(_ z: Double) -> Double { Foundation.exp(-0.5 * z * z) / (2 * Double.pi).squareRoot() }
@inline(__always) public func normalCDF(_ z: Double) -> Double { 0.5 * Foundation.erfc(-z / 2.0.squareRoot()) }
