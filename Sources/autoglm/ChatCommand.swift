import ArgumentParser
import Engine
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT; the chat loop polls it to stop the current answer.
private let interrupted = Atomic<Bool>(false)

struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat in the terminal with the model's own chat template (streams; each turn runs through the serving scheduler).",
        discussion: """
        Commands: /reset forgets the conversation, /system TEXT sets the system prompt (empty clears it), \
        /bye exits. A line ending in \\ continues on the next line; \"\"\" starts and ends a multi-line message. \
        Ctrl-C stops the current answer, Ctrl-D exits. Each turn sends the whole conversation as one \
        request through the same scheduler as `serve`; earlier turns' keys and values are reused only \
        through its prefix cache.
        """)

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "Jinja chat template file (default: the model's tokenizer.chat_template).") var template: String?
    @Option(name: .long, help: "System prompt.") var system: String?
    @Option(name: [.short, .customLong("max-tokens")], help: "Most tokens per answer.") var n: Int = 1024
    @Option(name: .long, help: "Context size in tokens (default: the model's).") var ctx: Int?
    @OptionGroup var sampling: SamplingOptions
    @Flag(name: .long, help: "After each answer, print token counts (reused from the prefix cache, prefilled, generated) to stderr.") var verbose = false

    func validate() throws {
        try FlagRange.check("-n", n, 1...16_777_216)
        try FlagRange.check("--ctx", ctx, 16...16_777_216)
    }

    func run() async throws {
        var source: String?
        if let template {
            do { source = try String(contentsOfFile: template, encoding: .utf8) } catch {
                throw ValidationError("cannot read --template \(template): \(error.localizedDescription)")
            }
        }
        let model = try options.modelPath()
        let lm = try LoadedModel(path: model, threads: options.effectiveThreads())
        let session = try ChatSession(model: lm, templateSource: source, system: system, context: ctx)
        defer { session.close() }
        let params = sampling.params
        installInterruptHandler()
        let stderr = FileHandle.standardError
        stderr.write(Data("Chatting with \((model as NSString).lastPathComponent) (context \(session.contextSize)). /bye or Ctrl-D exits, Ctrl-C stops an answer.\n".utf8))
        while let input = readMessage() {
            let trimmed = input.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("/") {
                let (cmd, arg) = splitCommand(trimmed)
                switch cmd {
                case "/bye", "/exit", "/quit": return
                case "/reset", "/clear":
                    session.reset()
                    writeOut("(conversation cleared)\n")
                case "/system":
                    session.setSystem(arg)
                    writeOut(arg.isEmpty ? "(system prompt cleared)\n" : "(system prompt set)\n")
                case "/help", "/?":
                    writeOut("/reset  /system TEXT  /bye   — \\ at line end continues; \"\"\" for multi-line; Ctrl-C stops an answer\n")
                default:
                    writeOut("unknown command \(cmd) (try /help)\n")
                }
                continue
            }
            interrupted.store(false, ordering: .relaxed)
            do {
                let stats = try await session.respond(to: input, maxTokens: n, sampling: params,
                                                shouldStop: { interrupted.load(ordering: .relaxed) },
                                                onText: writeOut)
                writeOut(stats.finishReason == .cancelled ? "\n(stopped)\n" : "\n")
                if stats.droppedMessages > 0 {
                    stderr.write(Data("(dropped the \(stats.droppedMessages) oldest exchange(s) to fit the context)\n".utf8))
                }
                if verbose {
                    stderr.write(Data("[reused \(stats.reusedTokens) cached, prefilled \(stats.prefilledTokens), generated \(stats.generatedTokens) tokens; \(stats.finishReason.rawValue)]\n".utf8))
                }
            } catch let e as ChatError {
                stderr.write(Data("error: \(e)\n".utf8))
            } catch let e as EngineError {
                stderr.write(Data("error: \(e)\n".utf8))
            }
            interrupted.store(false, ordering: .relaxed)
        }
        writeOut("\n")
    }

    func splitCommand(_ s: String) -> (String, String) {
        guard let sp = s.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return (s, "") }
        return (String(s[..<sp]), s[sp...].trimmingCharacters(in: .whitespaces))
    }

    /// Reads one message: a line, lines joined by a trailing backslash, or a \"\"\" block.
    /// Returns nil at end of input (Ctrl-D). Ctrl-C at the prompt discards the partial message.
    func readMessage() -> String? {
        var lines: [String] = []
        var inBlock = false
        writeOut(">>> ")
        while true {
            guard let line = readInputLine() else {
                if interrupted.exchange(false, ordering: .relaxed) {
                    writeOut("\n(Ctrl-D or /bye exits)\n>>> ")
                    lines = []
                    inBlock = false
                    continue
                }
                return lines.isEmpty ? nil : lines.joined(separator: "\n")
            }
            if inBlock {
                if line.hasSuffix("\"\"\"") {
                    lines.append(String(line.dropLast(3)))
                    return lines.joined(separator: "\n")
                }
                lines.append(line)
                writeOut("... ")
                continue
            }
            if lines.isEmpty && line.hasPrefix("\"\"\"") {
                let rest = String(line.dropFirst(3))
                if rest.hasSuffix("\"\"\"") && rest.count >= 3 { return String(rest.dropLast(3)) }
                inBlock = true
                if !rest.isEmpty { lines.append(rest) }
                writeOut("... ")
                continue
            }
            if line.hasSuffix("\\") {
                lines.append(String(line.dropLast()))
                writeOut("... ")
                continue
            }
            lines.append(line)
            return lines.joined(separator: "\n")
        }
    }

    /// One line from standard input without its newline; nil at end of input or when a signal
    /// interrupted the read (the caller checks `interrupted`). Reads the file descriptor directly
    /// so an interrupted read leaves no stream state behind.
    func readInputLine() -> String? {
        var bytes: [UInt8] = []
        var b: UInt8 = 0
        while true {
            let r = read(0, &b, 1)
            if r == 1 {
                if b == 0x0A { return String(decoding: bytes, as: UTF8.self) }
                bytes.append(b)
            } else if r == 0 {
                return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
            } else {
                if errno == EINTR && !interrupted.load(ordering: .relaxed) { continue }
                return nil
            }
        }
    }

    /// SIGINT sets `interrupted` without SA_RESTART, so a blocked read returns and the loop can react.
    func installInterruptHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interrupted.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
    }
}
