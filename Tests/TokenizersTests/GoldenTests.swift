import Foundation
import GGUF
import Testing
@testable import Tokenizers

@Suite("Golden tokenization vs llama.cpp")
struct GoldenTests {
    func check(model: String, fixture: String) throws {
        let tok = try TestModels.tokenizer(model)
        let entries = try TestModels.golden(fixture)
        var idsOK = 0, detokOK = 0, detokSpecialOK = 0
        for (i, e) in entries.enumerated() {
            let ids = tok.encode(e.text, addBOS: e.add_bos, parseSpecial: e.parse_special)
            if ids == e.ids { idsOK += 1 } else {
                Issue.record("\(fixture)[\(i)] ids mismatch for \(e.text.debugDescription.prefix(80))\n got \(ids.prefix(40))\nwant \(e.ids.prefix(40))")
            }
            let d = tok.decode(e.ids)
            if d == e.detok_lcpp { detokOK += 1 } else {
                Issue.record("\(fixture)[\(i)] detok mismatch: got \(d.debugDescription.prefix(120)) want \(e.detok_lcpp.debugDescription.prefix(120))")
            }
            let ds = tok.decode(e.ids, renderSpecial: true)
            if ds == e.detok_lcpp_special { detokSpecialOK += 1 } else {
                Issue.record("\(fixture)[\(i)] special detok mismatch: got \(ds.debugDescription.prefix(120)) want \(e.detok_lcpp_special.debugDescription.prefix(120))")
            }
        }
        print("[\(fixture)] ids \(idsOK)/\(entries.count), detok \(detokOK)/\(entries.count), detok_special \(detokSpecialOK)/\(entries.count)")
        #expect(idsOK == entries.count)
        #expect(detokOK == entries.count)
        #expect(detokSpecialOK == entries.count)
    }

    @Test func gemma3() throws { try check(model: TestModels.gemma, fixture: "gemma3-tokenize") }
    @Test func qwen2() throws { try check(model: TestModels.qwen, fixture: "qwen2-tokenize") }
}
