import JSON
import Testing

/// The order-keeping JSON parser and writer that schemas are read with.
struct OrderedJSONTests {
    @Test func keepsMemberOrderAndRoundTrips() throws {
        let text = #"{"z":1,"a":[true,false,null],"m":{"y":-2.5,"b":"x\"\\\n\u0001é😀"},"e":1e400}"#
        let v = try OrderedJSON.parse(text)
        #expect(v.members?.map(\.key) == ["z", "a", "m", "e"])
        #expect(v["m"]?.members?.map(\.key) == ["y", "b"])
        #expect(v["m"]?["b"]?.string == "x\"\\\n\u{01}é😀")
        #expect(v["a"]?.array == [.bool(true), .bool(false), .null])
        #expect(v["m"]?["y"]?.double == -2.5)
        #expect(v["e"]?.double == .infinity)
        let again = try OrderedJSON.parse(#"{"z":1,"a":[true,false,null],"m":{"y":-2.5,"b":"x\"\\\n\u0001é😀"}}"#)
        #expect(again.serialized() == #"{"z":1,"a":[true,false,null],"m":{"y":-2.5,"b":"x\"\\\n\u0001é😀"}}"#)
        #expect(try OrderedJSON.parse(again.serialized()) == again)
    }

    @Test func numbers() throws {
        #expect(try OrderedJSON.parse("9223372036854775807") == .int(Int.max))
        #expect(try OrderedJSON.parse("-9223372036854775808") == .int(Int.min))
        // Integers that overflow Int parse as doubles.
        #expect(try OrderedJSON.parse("9223372036854775808") == .double(9223372036854775808.0))
        #expect(try OrderedJSON.parse("-0") == .int(0))
        #expect(try OrderedJSON.parse(" 1.5E+2 ") == .double(150))
        #expect(OrderedJSON.double(2).serialized() == "2.0")
        #expect(OrderedJSON.int(-7).serialized() == "-7")
    }

    @Test func duplicateKeysLastWins() throws {
        let v = try OrderedJSON.parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(v["a"] == .int(3))
        #expect(v.members?.count == 3)
        #expect(v.jsonValue == JSONValue.object(["a": 3, "b": 2]))
    }

    @Test func surrogatePairsAndUnicode() throws {
        #expect(try OrderedJSON.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(throws: OrderedJSON.ParseError.self) { try OrderedJSON.parse(#""\ud83d""#) }
        #expect(throws: OrderedJSON.ParseError.self) { try OrderedJSON.parse(#""\ude00""#) }
        #expect(throws: OrderedJSON.ParseError.self) { try OrderedJSON.parse([0x22, 0xC0, 0x80, 0x22]) }   // overlong
        #expect(throws: OrderedJSON.ParseError.self) { try OrderedJSON.parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }   // surrogate
        #expect(throws: OrderedJSON.ParseError.self) { try OrderedJSON.parse([0x22, 0xE6, 0x97, 0x22]) }   // truncated
    }

    @Test func errorsSayWhereAndWhy() {
        let cases: [(String, Int, String)] = [
            ("{\"a\":1,}", 7, "member name"),
            ("[1,2", 4, "unterminated array"),
            ("01", 1, "leading zero"),
            ("\"a\u{01}\"", 2, "control character"),
            ("tru", 0, "expected 'true'"),
            ("1 2", 2, "after the JSON value"),
            ("\"\\x\"", 1, "invalid escape"),
            ("", 0, "end of input"),
            ("1.", 2, "decimal point"),
        ]
        for (text, offset, reason) in cases {
            do {
                _ = try OrderedJSON.parse(text)
                Issue.record("\(text) parsed")
            } catch {
                #expect(error.offset == offset, "\(text): \(error)")
                #expect(error.reason.contains(reason), "\(text): \(error)")
            }
        }
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        do {
            _ = try OrderedJSON.parse(deep)
            Issue.record("600 levels parsed")
        } catch {
            #expect(error.reason.contains("nested deeper than 512"))
        }
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect((try? OrderedJSON.parse(ok)) != nil)
    }

    @Test func fromJSONValueSortsKeys() {
        let v = OrderedJSON(JSONValue.object(["b": 1, "a": [nil, "s"]]))
        #expect(v.serialized() == #"{"a":[null,"s"],"b":1}"#)
        #expect(v.jsonValue == JSONValue.object(["b": 1, "a": [nil, "s"]]))
    }
}
