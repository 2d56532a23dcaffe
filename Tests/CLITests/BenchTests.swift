import Foundation
import Testing

/// `autoglm bench` runs through the serving scheduler (tiny synthetic model: only the shape of
/// the report is checked, never a rate's size).
@Suite("autoglm bench")
struct BenchTests {
    struct Report: Decodable {
        let prompt_tokens: Int
        let gen_tokens: Int
        let repeats: Int
        let concurrency: Int
        let prefill_tok_s: Double
        let decode_tok_s: Double
        let decode_tok_s_per_seq: Double
        let prefill_runs: [Double]
        let decode_runs: [Double]
        let decode_per_seq_runs: [Double]
        let peak_rss_mb: Double
        let cached_tokens: Int
        let kv_cache_mb: Int
    }

    @Test func concurrentRequestsReportAggregateAndPerSequenceDecode() throws {
        let path = try TinyQwen2().file("tiny-bench.gguf")
        let r = try CLI.run(["bench", "--model", path, "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "4",
                             "--repeats", "2", "--concurrency", "3", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONDecoder().decode(Report.self, from: Data(r.stdout.utf8))
        #expect(out.concurrency == 3)
        #expect(out.prompt_tokens == 8 && out.gen_tokens == 4 && out.repeats == 2)
        #expect(out.prefill_runs.count == 2 && out.decode_runs.count == 2 && out.decode_per_seq_runs.count == 2)
        #expect(out.prefill_tok_s > 0 && out.decode_tok_s > 0 && out.decode_tok_s_per_seq > 0)
        // Every prompt opens differently: nothing could come from a cached prefix.
        #expect(out.cached_tokens == 0)
        #expect(out.kv_cache_mb == 512)
    }

    @Test func textReportKeepsItsLinesAndAddsPerSequenceDecode() throws {
        let path = try TinyQwen2().file("tiny-bench-text.gguf")
        let one = try CLI.run(["bench", "--model", path, "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "3",
                               "--repeats", "1"])
        #expect(one.status == 0, "\(one.stderr)")
        let lines = one.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(one.stdout)")
        #expect(lines.first?.hasSuffix("prompt 8  gen 3  (median of 1)") == true, "\(one.stdout)")
        #expect(lines.dropFirst().map { $0.prefix(8) } == ["prefill ", "decode  ", "peak RSS"], "\(one.stdout)")
        let two = try CLI.run(["bench", "--model", path, "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "3",
                               "--repeats", "1", "--concurrency", "2"])
        #expect(two.status == 0, "\(two.stderr)")
        #expect(two.stdout.contains("concurrency 2  (median of 1)"), "\(two.stdout)")
        #expect(two.stdout.contains("tok/s  (aggregate of 2 sequences)"), "\(two.stdout)")
        #expect(two.stdout.contains("tok/s  per sequence"), "\(two.stdout)")
    }

    @Test func aKVBudgetTooSmallForTheConcurrencyIsRefused() throws {
        let path = try TinyQwen2().file("tiny-bench-kv.gguf")
        // 4096 sequences of 16 positions × 128 bytes (1 layer, 2 KV heads of 16, F16) = 8 MiB.
        let r = try CLI.run(["bench", "--model", path, "--threads", "1", "--prompt-tokens", "8", "--gen-tokens", "4",
                             "--concurrency", "4096", "--kv-cache-mb", "1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--kv-cache-mb 1 cannot hold 4096 sequences of 12 tokens (they need 8 MiB): raise it or lower --concurrency"),
                "\(r.stderr)")
        let zero = try CLI.run(["bench", "--model", path, "--concurrency", "0"])
        #expect(zero.stderr.contains("--concurrency must be in 1...4096 (got 0)"), "\(zero.stderr)")
    }
}
