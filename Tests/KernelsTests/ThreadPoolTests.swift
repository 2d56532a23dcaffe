import Foundation
import Kernels
import Testing

@Suite struct ThreadPoolTests {
    /// parallelFor visits each index exactly once, over many calls of varied sizes.
    @Test(arguments: [1, 2, 3, 4])
    func coversEachIndexOnce(_ threads: Int) {
        let pool = ThreadPool(threads: threads)
        #expect(pool.threadCount == threads)
        let sizes = [0, 1, 2, 3, 5, 17, 64, 1000]
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 1000)
        defer { counts.deallocate() }
        for rep in 0..<300 {
            let n = sizes[rep % sizes.count]
            counts.initialize(repeating: 0, count: 1000)
            pool.parallelFor(n) { i in counts[i] += 1 }
            for i in 0..<1000 where counts[i] != (i < n ? 1 : 0) {
                Issue.record("threads=\(threads) rep=\(rep) n=\(n): index \(i) ran \(counts[i]) times")
                return
            }
        }
    }

    /// Work actually spreads over more than one thread when asked to.
    @Test func usesWorkerThreads() {
        let pool = ThreadPool(threads: 2)
        let ids = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
        defer { ids.deallocate() }
        var sawWorker = false
        for _ in 0..<200 where !sawWorker {
            pool.parallelFor(64) { i in
                var x = 0.0
                for k in 0..<2000 { x += Double(k ^ i) }   // keep each item busy briefly
                ids[i] = UInt64(bitPattern: Int64(Int(bitPattern: pthread_self()))) &+ (x < 0 ? 1 : 0)
            }
            let me = UInt64(bitPattern: Int64(Int(bitPattern: pthread_self())))
            sawWorker = (0..<64).contains { ids[$0] != me }
        }
        #expect(sawWorker)
    }

    /// A parallelFor inside a parallelFor body of the same pool runs serially, no deadlock.
    @Test func nestedCallsRunSerially() {
        let pool = ThreadPool(threads: 3)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 8 * 5)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: 40)
        pool.parallelFor(8) { i in
            pool.parallelFor(5) { j in counts[i * 5 + j] += 1 }
        }
        #expect((0..<40).allSatisfy { counts[$0] == 1 })
    }

    /// Calls from several threads at once are serialized and all complete correctly.
    @Test func concurrentCallersAreSafe() {
        let pool = ThreadPool(threads: 2)
        nonisolated(unsafe) let counts = UnsafeMutablePointer<Int>.allocate(capacity: 4 * 100)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: 400)
        DispatchQueue.concurrentPerform(iterations: 4) { k in
            for _ in 0..<50 {
                pool.parallelFor(100) { i in counts[k * 100 + i] += 1 }
            }
        }
        #expect((0..<400).allSatisfy { counts[$0] == 50 })
    }
}
