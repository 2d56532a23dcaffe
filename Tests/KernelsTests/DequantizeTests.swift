import Foundation
import GGUF
import Kernels
import Testing

@Suite struct DequantizeTests {
    /// Every supported type dequantizes to exactly the values the `gguf` Python package
    /// computes (fixtures made by scripts/make-kernel-fixtures.py).
    @Test(arguments: typesUnderTest)
    func matchesReferenceFixture(_ type: GGMLType) throws {
        let blocks = try Fixtures.data(type.description, "blocks")
        let expected = try Fixtures.floats(type.description)
        #expect(blocks.count == expected.count / type.blockSize * type.typeSize)
        var got = [Float](repeating: .nan, count: expected.count)
        blocks.withUnsafeBytes { src in
            got.withUnsafeMutableBufferPointer { dst in
                dequantize(type, src.baseAddress!, count: expected.count, into: dst.baseAddress!)
            }
        }
        var mismatches = 0
        for i in 0..<expected.count where got[i].bitPattern != expected[i].bitPattern {
            if mismatches < 5 { Issue.record("\(type) element \(i): got \(got[i]), expected \(expected[i])") }
            mismatches += 1
        }
        #expect(mismatches == 0)
    }

    /// dequantizeRow reads the right row of a matrix.
    @Test(arguments: typesUnderTest)
    func rowMatchesWholeTensor(_ type: GGMLType) throws {
        let blocks = try Fixtures.data(type.description, "blocks")
        let expected = try Fixtures.floats(type.description)
        let cols = 256, rows = expected.count / cols
        try blocks.withUnsafeBytes { src in
            let w = try WeightMatrix(type: type, rows: rows, cols: cols, data: src.baseAddress!)
            var row = [Float](repeating: 0, count: cols)
            for r in [0, rows / 2, rows - 1] {
                row.withUnsafeMutableBufferPointer { dequantizeRow(w, row: r, into: $0.baseAddress!) }
                #expect(row.map(\.bitPattern) == expected[r * cols..<(r + 1) * cols].map(\.bitPattern))
            }
        }
    }
}
