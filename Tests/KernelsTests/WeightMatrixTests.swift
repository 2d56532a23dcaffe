import GGUF
import Kernels
import Testing

@Suite struct WeightMatrixTests {
    nonisolated(unsafe) static let bytes = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)

    @Test func rejectsColumnsThatAreNotWholeBlocks() {
        for (type, cols) in [(GGMLType.q4_K, 100), (.q8_0, 33), (.q6_K, 0), (.q5_0, -32)] {
            do {
                _ = try WeightMatrix(type: type, rows: 2, cols: cols, data: Self.bytes)
                Issue.record("\(type) cols=\(cols) accepted")
            } catch {
                #expect(error == .badColumns(type: type, cols: cols, blockSize: type.blockSize))
                #expect(error.description.contains("\(cols)"))
                #expect(error.description.contains("\(type)"))
                #expect(error.description.contains("block size \(type.blockSize)"))
            }
        }
    }

    @Test(arguments: [GGMLType.q4_1, .q2_K, .q3_K, .iq4_xs, .i32, .q8_K])
    func rejectsUnsupportedTypes(_ type: GGMLType) {
        #expect(!isSupported(type))
        do {
            _ = try WeightMatrix(type: type, rows: 1, cols: 256, data: Self.bytes)
            Issue.record("\(type) accepted")
        } catch {
            #expect(error == .unsupportedType(type))
            #expect(error.description.contains("\(type) is not supported"))
            #expect(error.description.contains("Q4_K"))
        }
    }

    @Test func rejectsNegativeRows() {
        #expect(throws: KernelError.badRows(-1)) {
            _ = try WeightMatrix(type: .f32, rows: -1, cols: 4, data: Self.bytes)
        }
    }

    @Test(arguments: typesUnderTest)
    func acceptsSupportedTypes(_ type: GGMLType) throws {
        #expect(isSupported(type))
        let w = try WeightMatrix(type: type, rows: 3, cols: 256, data: Self.bytes)
        #expect(w.rowBytes == 256 / type.blockSize * type.typeSize)
        #expect(w.rows == 3 && w.cols == 256 && w.type == type)
    }
}
