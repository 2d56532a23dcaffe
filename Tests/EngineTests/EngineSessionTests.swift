import Engine
import Foundation
import Synchronization
import Testing
import Tokenizers

// Nested in SchedulerTests: its `.serialized` covers these suites too, so they never drive the
// shared test model's thread pool (or hold the cooperative pool) beside it.
extension SchedulerTests {
    /// `EngineSession` (the path of `generate`, `bench` and `chat`) and `ChatSession` on top of it,
    /// against the plain single-sequence loop. Token counts are small (reference kernels are slow);
    /// all assertions are about tokens and event order, never about time.
    @Suite(.timeLimit(.minutes(5)))
    struct EngineSessionTests {
        static let config = SchedulerConfig(maxSeqs: 4, maxBatchedTokens: 64, kvCacheMB: 64)

        @Test func runStreamsTheReferenceTokensAndReportsTimings() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let prompt = lm.tokenizer.encode("The capital of France is")
            let expected = try referenceGreedy(lm, prompt, maxTokens: 4)
            let engine = EngineSession(model: lm, config: Self.config)
            var streamed: [Int32] = []
            let r = try await engine.run(GenerationRequest(promptIDs: prompt, maxTokens: 4)) { t in
                streamed.append(t.id)
                return true
            }
            #expect(r.generatedIDs == expected)
            #expect(streamed == expected)
            #expect(r.promptIDs == prompt)
            #expect(r.finishReason == .length)
            // A fresh engine has nothing cached: every prompt token was computed.
            #expect(r.cachedTokens == 0)
            #expect(r.prefilledTokens == prompt.count)
            let scheduled = try #require(r.timings.scheduled)
            let first = try #require(r.timings.firstToken)
            let finished = try #require(r.timings.finished)
            #expect(r.timings.queued <= scheduled && scheduled <= first && first <= finished)
            #expect(r.prefillSeconds >= 0 && r.decodeSeconds >= 0 && r.firstTokenSeconds >= r.prefillSeconds)
            engine.close()
            #expect(engine.scheduler.stats.alive == false)
        }

        @Test func refusingATokenCancelsTheRequest() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let engine = EngineSession(model: lm, config: Self.config)
            defer { engine.close() }
            var seen = 0
            let r = try await engine.run(GenerationRequest(promptIDs: lm.tokenizer.encode("Tell me a story"),
                                                           maxTokens: 200, ignoreEOS: true)) { _ in
                seen += 1
                return seen < 2
            }
            // Tokens the engine produced before the cancel reached it are not passed on.
            #expect(seen == 2)
            #expect(r.generatedIDs.count == 2)
            #expect(r.finishReason == .cancelled)
            #expect(await waitForFreeKV(engine.scheduler) == 0)
            // The engine goes on serving.
            let prompt = lm.tokenizer.encode("1, 2, 3, 4,")
            let again = try await engine.run(GenerationRequest(promptIDs: prompt, maxTokens: 2))
            #expect(again.generatedIDs == (try referenceGreedy(lm, prompt, maxTokens: 2)))
        }

        /// Sequences per step, as the engine thread reports them.
        final class Steps: Sendable {
            let sizes = Mutex<[Int]>([])
            func add(_ n: Int) { sizes.withLock { $0.append(n) } }
            var all: [Int] { sizes.withLock { $0 } }
        }

        @Test func runAllSubmitsTogetherAndMatchesTheReference() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let prompts = SchedulerTests.prompts.map { lm.tokenizer.encode($0) }
            let expected = try prompts.map { try referenceGreedy(lm, $0, maxTokens: 3) }
            let engine = EngineSession(model: lm, config: Self.config)
            defer { engine.close() }
            let steps = Steps()
            engine.scheduler.setStepObserver { steps.add($0.sequences) }
            let results = try await engine.runAll(prompts.map { GenerationRequest(promptIDs: $0, maxTokens: 3) })
            #expect(results.map(\.generatedIDs) == expected)
            #expect(results.map(\.promptIDs) == prompts)
            // One submission: the first forward pass carried every prompt.
            #expect(steps.all.first == prompts.count)
        }

        @Test func refusedRequestsAreTypedErrorsNamingTheFix() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let engine = EngineSession(model: lm, config: SchedulerConfig(kvCacheMB: 64, contextLength: 32))
            defer { engine.close() }
            let tooLong = await #expect(throws: EngineError.self) {
                try await engine.run(GenerationRequest(promptIDs: [2, 3, 4], maxTokens: 30))
            }
            if case .rejected(.exceedsContext(promptTokens: 3, maxTokens: 30, context: 32)) = tooLong {} else {
                Issue.record("expected the scheduler's exceedsContext, got \(String(describing: tooLong))")
            }
            #expect(tooLong.map { "\($0)".contains("lower max_tokens") } == true)
            let empty = #expect(throws: EngineError.self) { try engine.fittingContext(GenerationRequest(promptIDs: [], maxTokens: 1)) }
            if case .emptyPrompt = empty {} else { Issue.record("expected emptyPrompt, got \(String(describing: empty))") }
            let full = #expect(throws: EngineError.self) {
                try engine.fittingContext(GenerationRequest(promptIDs: Array(repeating: 2, count: 32), maxTokens: 1))
            }
            if case .promptTooLong(tokens: 32, context: 32) = full {} else {
                Issue.record("expected promptTooLong(32, 32), got \(String(describing: full))")
            }
            #expect(full.map { "\($0)".contains("shorten the prompt") } == true)
            // A prompt that fills the context with nothing asked of it is still valid.
            #expect(try engine.fittingContext(GenerationRequest(promptIDs: Array(repeating: 2, count: 32), maxTokens: 0)).maxTokens == 0)
        }

        /// `generate` asks for more tokens than the context holds: the answer ends at the context.
        @Test func fittingTheContextEndsTheAnswerThere() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let engine = EngineSession(model: lm, config: SchedulerConfig(kvCacheMB: 64, contextLength: 20))
            defer { engine.close() }
            let prompt = lm.tokenizer.encode("1, 2, 3, 4,")
            #expect(prompt.count < 20)
            let request = try engine.fittingContext(GenerationRequest(promptIDs: prompt, maxTokens: 1000, ignoreEOS: true))
            #expect(request.maxTokens == 20 - prompt.count)
            let r = try await engine.run(request)
            #expect(r.generatedIDs.count == 20 - prompt.count)
            #expect(r.finishReason == .length)
        }
    }

    /// `ChatSession`: every turn is the whole conversation, submitted through the session's engine.
    @Suite(.timeLimit(.minutes(5)))
    struct ChatSessionTests {
        /// A Gemma-style template (the test model's GGUF carries none).
        static let template = """
        {{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}
        {{ m.content }}<end_of_turn>
        {% endfor %}{% if add_generation_prompt %}<start_of_turn>model
        {% endif %}
        """

        @Test func eachTurnSubmitsTheWholeConversation() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let chat = try ChatSession(model: lm, templateSource: Self.template, context: 256)
            defer { chat.close() }
            #expect(chat.contextSize == 256)
            var text1 = ""
            let t1 = try await chat.respond(to: "What is the capital of France?", maxTokens: 3, sampling: .greedy) { text1 += $0 }
            #expect(t1.reusedTokens == 0)
            #expect(t1.prefilledTokens > 0)
            #expect(t1.generatedTokens > 0 && t1.generatedTokens <= 3)
            #expect(t1.droppedMessages == 0)
            #expect(chat.messages.count == 2)
            #expect(chat.messages.last == ChatMessage(role: "assistant", text1))
            let t2 = try await chat.respond(to: "And of Italy?", maxTokens: 3, sampling: .greedy) { _ in }
            #expect(chat.messages.count == 4)
            // The second prompt holds the first exchange too: longer than the first prompt plus its answer.
            #expect(t2.reusedTokens + t2.prefilledTokens > t1.reusedTokens + t1.prefilledTokens + t1.generatedTokens)
            #expect(await waitForFreeKV(chat.engine.scheduler) == 0)
        }

        @Test func aStoppedAnswerIsKeptAsFarAsItGot() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let chat = try ChatSession(model: lm, templateSource: Self.template, context: 256)
            defer { chat.close() }
            var pieces = 0
            let t = try await chat.respond(to: "Count from 1 to 100.", maxTokens: 50, sampling: .greedy,
                                           shouldStop: { pieces >= 2 }) { _ in pieces += 1 }
            #expect(t.finishReason == .cancelled)
            #expect(t.generatedTokens == 2)
            #expect(chat.messages.count == 2)
        }

        @Test func oldExchangesAreDroppedWhenTheConversationOutgrowsTheContext() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let context = 48, maxTokens = 4
            let chat = try ChatSession(model: lm, templateSource: Self.template, context: context)
            defer { chat.close() }
            let first = "Please tell me something short and simple about apples, pears, peaches and the trees they grow on."
            let second = "Now tell me something short and simple about plums, cherries, apricots and the trees they grow on."
            let t1 = try await chat.respond(to: first, maxTokens: maxTokens, sampling: .greedy) { _ in }
            #expect(t1.droppedMessages == 0)
            // Prompt 1 + answer + prompt 2 overflows context − maxTokens: the first exchange goes.
            #expect(t1.prefilledTokens + t1.generatedTokens + lm.tokenizer.encode(second).count > context - maxTokens)
            let t2 = try await chat.respond(to: second, maxTokens: maxTokens, sampling: .greedy) { _ in }
            #expect(t2.droppedMessages == 1)
            #expect(t2.reusedTokens + t2.prefilledTokens <= context - maxTokens)
            #expect(chat.messages.count == 2)
            #expect(chat.messages.first == ChatMessage(role: "user", second))
        }

        @Test func aMessageLongerThanTheContextIsRefused() async throws {
            guard let lm = try TestModels.load(TestModels.gemma3) else { return }
            let chat = try ChatSession(model: lm, templateSource: Self.template, context: 16)
            defer { chat.close() }
            let long = String(repeating: "apple banana cherry ", count: 20)
            let e = await #expect(throws: ChatError.self) {
                try await chat.respond(to: long, maxTokens: 4, sampling: .greedy) { _ in }
            }
            if case .conversationTooLong(tokens: _, context: 16) = e {} else {
                Issue.record("expected conversationTooLong(context: 16), got \(String(describing: e))")
            }
            #expect(chat.messages.isEmpty)
        }
    }
}
