import Foundation
import Testing

/// Numeric flags outside their range, non-finite numbers and an empty API key are refused
/// before anything starts, each with one line naming the flag and its range.
@Suite("CLI flag ranges")
struct FlagRangeTests {
    @Test func badServeFlagsAreRefusedWithTheRange() throws {
        let cases: [([String], String)] = [
            (["--request-timeout", "inf"], "--request-timeout must be a number in 0...604800"),
            (["--request-timeout", "nan"], "--request-timeout must be a number in 0...604800"),
            (["--drain-timeout", "-1"], "--drain-timeout must be a number in 0...86400"),
            (["--unready-delay", "1e300"], "--unready-delay must be a number in 0...3600"),
            (["--max-body-mb", "0"], "--max-body-mb must be a number in 0.001...1024"),
            (["--max-body-mb", "1e12"], "--max-body-mb must be a number in 0.001...1024"),
            (["--max-prompt-mb", "inf"], "--max-prompt-mb must be a number in 0.001...1024"),
            (["--idle-timeout", "0"], "--idle-timeout must be a number in 1...86400"),
            (["--header-timeout", "-inf"], "--header-timeout must be a number in 1...3600"),
            (["--kv-cache-mb", "99999999999"], "--kv-cache-mb must be in 1...1048576 MiB"),
            (["--max-seqs", "0"], "--max-seqs must be in 1...4096"),
            (["--max-batched-tokens", "-5"], "--max-batched-tokens must be in 1...1048576"),
            (["--max-queue", "-1"], "--max-queue must be in 0...1000000 sequences"),
            (["--max-seqs-per-request", "0"], "--max-seqs-per-request must be in 1...4096"),
            (["--port", "70000"], "--port must be in 0...65535"),
            (["--ctx", "8"], "--ctx must be in 16...16777216"),
            (["--threads", "0"], "--threads must be in 1...512"),
            (["--threads", "100000"], "--threads must be in 1...512"),
            (["--api-key", ""], "--api-key is empty"),
            (["--api-key", "  "], "--api-key is empty"),
        ]
        for (args, message) in cases {
            // FLAG=VALUE for negative numbers, so they are not taken for a flag.
            let flag = args[1].hasPrefix("-") ? [args[0] + "=" + args[1]] : args
            let r = try CLI.run(["serve", "--model", "/nonexistent.gguf"] + flag)
            #expect(r.status != 0, "\(args) was accepted")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count <= 3, "\(args): \(r.stderr)")
        }
        for (args, message) in [(["--temp", "inf"], "--temp must be a number in 0...100"),
                                (["--repeat-penalty", "nan"], "--repeat-penalty must be > 0")] {
            let r = try CLI.run(["generate", "--model", "/nonexistent.gguf", "--prompt", "x", args[0] + "=" + args[1]])
            #expect(r.status != 0 && r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    /// The other commands' numbers: absurd sizes and non-finite durations are refused too.
    @Test func otherCommandsRangeCheckTheirNumbers() throws {
        let load = ["loadtest", "--url", "http://127.0.0.1:9", "--concurrency", "1", "--requests", "1",
                    "--prompt-tokens", "1", "--max-tokens", "1"]
        let cases: [([String], String)] = [
            (load + ["--timeout", "1e300"], "--timeout must be a number in 0.001...86400 s"),
            (load + ["--timeout", "inf"], "--timeout must be a number in 0.001...86400 s"),
            (load + ["--warmup", "99999999999"], "--warmup must be in 0...1000000"),
            (["bench", "--model", "/nonexistent.gguf", "--prompt-tokens", "99999999999"], "--prompt-tokens must be in 1...1048576"),
            (["bench", "--model", "/nonexistent.gguf", "--repeats", "0"], "--repeats must be in 1...1000"),
            (["generate", "--model", "/nonexistent.gguf", "--prompt", "x", "-n", "99999999999"], "-n must be in 0...16777216"),
            (["optimize", "--model", "/nonexistent.gguf", "--objective", "throughput", "--trial-timeout", "inf"], "--trial-timeout must be a number in 1...86400 s"),
            (["optimize", "--model", "/nonexistent.gguf", "--objective", "latency", "--max-ttft-ms", "nan"], "--max-ttft-ms must be a number"),
        ]
        for (args, message) in cases {
            let r = try CLI.run(args)
            #expect(r.status != 0, "\(args) was accepted")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    /// `--speculative` / `--speculative-k` on serve and generate: draft refused as not available
    /// yet, unknown methods with the allowed values, k with its range; ngram generates the same
    /// greedy tokens as off and reports its draft counts.
    @Test func speculativeFlags() throws {
        let cases: [([String], String)] = [
            (["--speculative", "draft"], "--speculative: speculative decoding 'draft' (a draft model) is not available yet; use 'ngram'"),
            (["--speculative", "fast"], "--speculative: speculative decoding 'fast' is not a method; use one of off, ngram, draft"),
            (["--speculative", "ngram", "--speculative-k", "0"], "--speculative-k: the speculative k (draft tokens per step) must be in 1...32, got 0"),
        ]
        for (args, message) in cases {
            for head in [["serve", "--model", "/nonexistent.gguf"], ["generate", "--model", "/nonexistent.gguf", "--prompt", "x"]] {
                let r = try CLI.run(head + args)
                #expect(r.status != 0, "\(head + args) was accepted")
                #expect(r.stderr.contains(message), "\(head + args): \(r.stderr)")
            }
        }
        let path = try TinyQwen2().file("tiny-speculative.gguf")
        func generate(_ extra: [String]) throws -> [String: Any] {
            let r = try CLI.run(["generate", "--model", path, "--prompt", "abcabcabcabcabc", "-n", "24", "--temp", "0", "--ignore-eos", "--json"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        }
        let off = try generate(["--speculative", "off"])
        let on = try generate(["--speculative", "ngram", "--speculative-k", "4"])
        #expect((off["generated_ids"] as? [Int]) != nil)
        #expect((off["generated_ids"] as? [Int]) == (on["generated_ids"] as? [Int]))
        #expect((off["spec_draft_tokens"] as? Int) == 0)
        #expect((on["spec_draft_tokens"] as? Int) != nil && (on["spec_accepted_tokens"] as? Int) != nil)
    }

    /// More threads than cores are capped to the cores with a warning, unless forced.
    @Test func threadsAboveTheCoresAreCapped() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let path = try TinyQwen2().file("tiny-threads.gguf")
        let r = try CLI.run(["bench", "--model", path, "--threads", "\(cores * 8)", "--prompt-tokens", "4",
                             "--gen-tokens", "2", "--repeats", "1", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning: --threads \(cores * 8) is more than this machine's \(cores) cores; using \(cores)"), "\(r.stderr)")
        #expect(r.stdout.contains("\"threads\" : \(cores)") || r.stdout.contains("\"threads\":\(cores)"), "\(r.stdout)")
        let forced = try CLI.run(["bench", "--model", path, "--threads", "\(cores * 2)", "--force-threads",
                                  "--prompt-tokens", "4", "--gen-tokens", "2", "--repeats", "1", "--json"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(!forced.stderr.contains("warning: --threads"))
        #expect(forced.stdout.contains("\"threads\" : \(cores * 2)") || forced.stdout.contains("\"threads\":\(cores * 2)"), "\(forced.stdout)")
    }

    /// AUTOGLM_API_KEYS set but empty would turn auth off: refused.
    @Test func emptyKeyListInTheEnvironmentIsRefused() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["serve", "--model", "/nonexistent.gguf"]
        var env = ProcessInfo.processInfo.environment
        env["AUTOGLM_API_KEYS"] = " , "
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(p.terminationStatus != 0)
        #expect(text.contains("AUTOGLM_API_KEYS is set but holds no key"), "\(text)")
    }
}
