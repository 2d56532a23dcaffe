import Foundation
import Registry
import Testing

@Suite struct TrialStoreTests {
    @Test func trialsPersistPerStudyAcrossReopen() throws {
        let home = TempHome()
        let r = try home.registry()
        let s = try r.openStudy(id: "abc", model: nil, version: nil, modelDigest: "d1", description: "{\"objective\":\"throughput\"}")
        #expect(s.modelDigest == "d1")
        try r.saveTrial(study: "abc", index: 1, payload: Data("{\"b\":1}".utf8))
        try r.saveTrial(study: "abc", index: 0, payload: Data("{\"a\":0}".utf8))
        try r.openStudy(id: "other", model: nil, version: nil, modelDigest: "d2", description: "{}")
        try r.saveTrial(study: "other", index: 0, payload: Data("{}".utf8))

        let again = try home.registry()
        // Opening an existing study keeps its first description and its trials.
        let s2 = try again.openStudy(id: "abc", model: nil, version: nil, modelDigest: "d1", description: "{\"changed\":true}")
        #expect(s2.description == "{\"objective\":\"throughput\"}")
        let t = try again.trials(study: "abc")
        #expect(t.map(\.index) == [0, 1])
        #expect(t.map { String(decoding: $0.payload, as: UTF8.self) } == ["{\"a\":0}", "{\"b\":1}"])
        // Replacing a trial index overwrites it.
        try again.saveTrial(study: "abc", index: 1, payload: Data("{\"b\":2}".utf8))
        #expect(try again.trials(study: "abc").count == 2)
        #expect(String(decoding: try again.trials(study: "abc")[1].payload, as: UTF8.self) == "{\"b\":2}")
        try again.clearTrials(study: "abc")
        #expect(try again.trials(study: "abc").isEmpty)
        #expect(try again.trials(study: "other").count == 1)
        #expect(try again.study(id: "missing") == nil)
    }
}
