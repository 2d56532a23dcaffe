// Lexer and parser for the Jinja subset used by chat templates.
// Whitespace rules follow jinja2 with trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False.

// MARK: - AST

enum Literal: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

indirect enum ExprKind: Sendable {
    case literal(Literal)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case attr(Expr, String)
    case item(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, [Expr], negated: Bool)
    case unary(String, Expr)        // "-", "+", "not"
    case binary(String, Expr, Expr) // + - * / // % ** ~
    case and(Expr, Expr)
    case or(Expr, Expr)
    case compare(Expr, [(String, Expr)]) // == != < <= > >= in notin
    case cond(Expr, Expr, Expr?)          // then, condition, else
}

struct Expr: Sendable {
    let kind: ExprKind
    let pos: Int
}

enum SetTarget: Sendable {
    case names([String])
    case attr(String, String)
}

indirect enum Node: Sendable {
    case text(String)
    case output(Expr)
    case ifChain([(Expr, [Node])], [Node]?)
    case forLoop(targets: [String], iter: Expr, filter: Expr?, body: [Node], elseBody: [Node]?, pos: Int)
    case set(SetTarget, Expr, pos: Int)
    case setBlock(SetTarget, [Node], pos: Int)
    case macro(name: String, params: [(String, Expr?)], body: [Node])
    case loopBreak(pos: Int)
    case loopContinue(pos: Int)
}

struct TemplateProgram: Sendable {
    let nodes: [Node]
    /// Line start offsets (in scalars) for error positions.
    let lineStarts: [Int]

    func location(_ pos: Int) -> (line: Int, column: Int) {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= pos { lo = mid } else { hi = mid - 1 }
        }
        return (lo + 1, pos - lineStarts[lo] + 1)
    }
}

// MARK: - Tokens

enum TokKind: Equatable, Sendable {
    case data, blockBegin, blockEnd, varBegin, varEnd, name, string, int, float, op, eof
}

struct Token: Sendable {
    let kind: TokKind
    let text: String
    let pos: Int
}

@inline(__always) func isPyWhitespace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
        return true
    default:
        return false
    }
}

struct TemplateLexer {
    let src: [Unicode.Scalar]
    let lineStarts: [Int]
    var tokens: [Token] = []

    init(source: String) {
        // Newlines are normalized to "\n"; one trailing newline is dropped (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var prevCR = false
        for c in source.unicodeScalars {
            if c == "\r" { scalars.append("\n"); prevCR = true; continue }
            if c == "\n" && prevCR { prevCR = false; continue }
            prevCR = false
            scalars.append(c)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        src = scalars
        var starts = [0]
        for (k, c) in scalars.enumerated() where c == "\n" { starts.append(k + 1) }
        lineStarts = starts
    }

    func err(_ m: String, _ pos: Int) -> ChatTemplateError {
        let p = TemplateProgram(nodes: [], lineStarts: lineStarts)
        let (l, c) = p.location(pos)
        return .syntax(message: m, line: l, column: c)
    }

    func string(_ a: Int, _ b: Int) -> String { String(String.UnicodeScalarView(src[a..<b])) }

    func at(_ k: Int, _ s: String) -> Bool {
        var j = k
        for c in s.unicodeScalars {
            guard j < src.count, src[j] == c else { return false }
            j += 1
        }
        return true
    }

    mutating func run() throws(ChatTemplateError) -> [Token] {
        let n = src.count
        var pos = 0
        var lineStarting = true
        while pos < n {
            // Next tag start.
            var i = pos
            var found = -1
            while i + 1 < n {
                if src[i] == "{" {
                    let d = src[i + 1]
                    if d == "{" || d == "%" || d == "#" { found = i; break }
                }
                i += 1
            }
            if found < 0 {
                tokens.append(Token(kind: .data, text: string(pos, n), pos: pos))
                break
            }
            let kindChar = src[found + 1]
            var sign: Unicode.Scalar? = nil
            if found + 2 < n, src[found + 2] == "-" || (src[found + 2] == "+" && kindChar != "{") { sign = src[found + 2] }
            // Text before the tag, with whitespace control applied.
            var textEnd = found
            if sign == "-" {
                while textEnd > pos, isPyWhitespace(src[textEnd - 1]) { textEnd -= 1 }
            } else if sign != "+" && kindChar != "{" {
                var lpos = textEnd
                while lpos > pos, src[lpos - 1] != "\n" { lpos -= 1 }
                if lpos > pos || lineStarting {
                    var allWS = lpos < textEnd
                    for k in lpos..<textEnd where !isPyWhitespace(src[k]) { allWS = false; break }
                    if allWS { textEnd = lpos }
                }
            }
            if textEnd > pos { tokens.append(Token(kind: .data, text: string(pos, textEnd), pos: pos)) }
            var p = found + 2 + (sign == nil ? 0 : 1)
            if kindChar == "#" {
                var e = p
                while e + 1 < n, !(src[e] == "#" && src[e + 1] == "}") { e += 1 }
                guard e + 1 < n else { throw err("unclosed comment", found) }
                let strip = e > p && src[e - 1] == "-"
                var after = e + 2
                if strip {
                    while after < n, isPyWhitespace(src[after]) { after += 1 }
                } else if after < n, src[after] == "\n" {
                    after += 1
                }
                pos = after
                lineStarting = src[pos - 1] == "\n"
                continue
            }
            let isBlock = kindChar == "%"
            tokens.append(Token(kind: isBlock ? .blockBegin : .varBegin, text: "", pos: found))
            var braceDepth = 0
            var closed = false
            while p < n {
                let c = src[p]
                if isPyWhitespace(c) { p += 1; continue }
                // Closing delimiter.
                let close: String = isBlock ? "%}" : "}}"
                if braceDepth == 0 || isBlock {
                    var strip = false, plus = false, len = 0
                    if at(p, "-" + close) { strip = true; len = 3 }
                    else if isBlock && at(p, "+" + close) { plus = true; len = 3 }
                    else if at(p, close) && (isBlock || braceDepth == 0) { len = 2 }
                    if len > 0 && !(isBlock == false && braceDepth > 0) {
                        tokens.append(Token(kind: isBlock ? .blockEnd : .varEnd, text: "", pos: p))
                        var after = p + len
                        if strip {
                            while after < n, isPyWhitespace(src[after]) { after += 1 }
                        } else if isBlock && !plus, after < n, src[after] == "\n" {
                            after += 1
                        }
                        pos = after
                        lineStarting = src[pos - 1] == "\n"
                        closed = true
                        break
                    }
                }
                // Expression tokens.
                if c == "_" || (c.properties.isAlphabetic) {
                    var e = p + 1
                    while e < n, src[e] == "_" || src[e].properties.isAlphabetic || (src[e] >= "0" && src[e] <= "9") { e += 1 }
                    tokens.append(Token(kind: .name, text: string(p, e), pos: p))
                    p = e
                    continue
                }
                if c >= "0" && c <= "9" {
                    var e = p
                    while e < n, (src[e] >= "0" && src[e] <= "9") || src[e] == "_" { e += 1 }
                    var isFloat = false
                    if e + 1 < n, src[e] == ".", src[e + 1] >= "0" && src[e + 1] <= "9" {
                        isFloat = true
                        e += 1
                        while e < n, (src[e] >= "0" && src[e] <= "9") || src[e] == "_" { e += 1 }
                    }
                    if e < n, src[e] == "e" || src[e] == "E" {
                        var f = e + 1
                        if f < n, src[f] == "+" || src[f] == "-" { f += 1 }
                        if f < n, src[f] >= "0" && src[f] <= "9" {
                            isFloat = true
                            e = f
                            while e < n, src[e] >= "0" && src[e] <= "9" { e += 1 }
                        }
                    }
                    tokens.append(Token(kind: isFloat ? .float : .int, text: string(p, e).replacingUnderscores(), pos: p))
                    p = e
                    continue
                }
                if c == "'" || c == "\"" {
                    var e = p + 1
                    var out = String.UnicodeScalarView()
                    var ok = false
                    while e < n {
                        let d = src[e]
                        if d == c { ok = true; break }
                        if d == "\\", e + 1 < n {
                            e += 1
                            let x = src[e]
                            switch x {
                            case "n": out.append("\n")
                            case "t": out.append("\t")
                            case "r": out.append("\r")
                            case "\\": out.append("\\")
                            case "'": out.append("'")
                            case "\"": out.append("\"")
                            case "a": out.append("\u{07}")
                            case "b": out.append("\u{08}")
                            case "f": out.append("\u{0C}")
                            case "v": out.append("\u{0B}")
                            case "\n": break
                            case "0"..."7":
                                var v: UInt32 = 0
                                var k = 0
                                while k < 3, e < n, src[e] >= "0" && src[e] <= "7" { v = v * 8 + src[e].value - 48; e += 1; k += 1 }
                                e -= 1
                                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                            case "x", "u", "U":
                                let len = x == "x" ? 2 : (x == "u" ? 4 : 8)
                                var v: UInt32 = 0
                                var good = e + len < n
                                if good {
                                    for k in 1...len {
                                        guard let d = hexDigit(src[e + k]) else { good = false; break }
                                        v = v &* 16 &+ d
                                    }
                                }
                                guard good, let sc = Unicode.Scalar(v) else { throw err("invalid escape in string literal", e - 1) }
                                out.append(sc)
                                e += len
                            default:
                                out.append("\\")
                                out.append(x)
                            }
                            e += 1
                            continue
                        }
                        out.append(d)
                        e += 1
                    }
                    guard ok else { throw err("unterminated string literal", p) }
                    tokens.append(Token(kind: .string, text: String(out), pos: p))
                    p = e + 1
                    continue
                }
                let two = p + 1 < n ? string(p, p + 2) : ""
                if ["//", "**", "==", "!=", "<=", ">="].contains(two) {
                    tokens.append(Token(kind: .op, text: two, pos: p))
                    p += 2
                    continue
                }
                if "+-*/%~<>=()[]{},.:|".unicodeScalars.contains(c) {
                    if c == "{" { braceDepth += 1 }
                    if c == "}" { braceDepth -= 1 }
                    tokens.append(Token(kind: .op, text: String(c), pos: p))
                    p += 1
                    continue
                }
                throw err("unexpected character '\(c)'", p)
            }
            if !closed { throw err(isBlock ? "unclosed block tag (missing '%}')" : "unclosed expression (missing '}}')", found) }
        }
        tokens.append(Token(kind: .eof, text: "", pos: n))
        return tokens
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(self.unicodeScalars.filter { $0 != "_" }.map(Character.init)) }
}

// MARK: - Parser

/// Filters, tests, globals and methods the interpreter implements (checked at parse time).
enum Builtins {
    static let filters: Set<String> = [
        "abs", "attr", "batch", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
        "title", "tojson", "trim", "unique", "upper", "wordcount",
    ]
    static let tests: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "even", "false", "float", "ge", "gt",
        ">", ">=", "in", "integer", "iterable", "le", "lower", "lt", "<", "<=", "mapping", "ne", "!=", "none",
        "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper",
    ]
    static let globals: Set<String> = ["raise_exception", "strftime_now", "namespace", "range", "dict"]
    static let methods: Set<String> = [
        // str
        "startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip", "upper", "lower", "title",
        "capitalize", "replace", "find", "rfind", "count", "join", "splitlines", "isdigit", "isalpha", "isalnum",
        "isspace", "islower", "isupper",
        // dict
        "get", "items", "keys", "values",
        // loop
        "cycle",
    ]
}

struct TemplateParser {
    var toks: [Token]
    var i = 0
    let lineStarts: [Int]
    var macroNames: Set<String> = []
    var callSites: [(String, Int)] = []
    /// Guards the recursive descent against pathologically nested templates.
    var nesting = 0
    static let maxNesting = 256

    mutating func enter(_ pos: Int) throws(ChatTemplateError) {
        nesting += 1
        if nesting > TemplateParser.maxNesting { throw syntax("template nested too deeply", pos) }
    }

    static func parse(_ source: String) throws(ChatTemplateError) -> TemplateProgram {
        var lexer = TemplateLexer(source: source)
        let toks = try lexer.run()
        var p = TemplateParser(toks: toks, lineStarts: lexer.lineStarts)
        let (nodes, end) = try p.parseBody(until: [])
        if let end { throw p.syntax("unexpected '\(end.0)'", end.1) }
        // Calls to names that are neither builtins nor macros of this template cannot work.
        for (name, pos) in p.callSites where !Builtins.globals.contains(name) && !p.macroNames.contains(name) {
            throw p.unsupported("function \(name)()", pos)
        }
        return TemplateProgram(nodes: nodes, lineStarts: lexer.lineStarts)
    }

    func loc(_ pos: Int) -> (Int, Int) { TemplateProgram(nodes: [], lineStarts: lineStarts).location(pos) }
    func syntax(_ m: String, _ pos: Int) -> ChatTemplateError {
        let (l, c) = loc(pos)
        return .syntax(message: m, line: l, column: c)
    }
    func unsupported(_ what: String, _ pos: Int) -> ChatTemplateError {
        let (l, c) = loc(pos)
        return .unsupported(construct: what, line: l, column: c)
    }

    var cur: Token { toks[i] }
    func peek(_ k: Int = 1) -> Token { toks[min(i + k, toks.count - 1)] }
    mutating func advance() -> Token { let t = toks[i]; if i < toks.count - 1 { i += 1 }; return t }
    func isOp(_ s: String) -> Bool { cur.kind == .op && cur.text == s }
    func isName(_ s: String) -> Bool { cur.kind == .name && cur.text == s }

    mutating func expectOp(_ s: String) throws(ChatTemplateError) {
        guard isOp(s) else { throw syntax("expected '\(s)'\(found)", cur.pos) }
        i += 1
    }
    var found: String {
        switch cur.kind {
        case .blockEnd: return ", found end of block tag"
        case .varEnd: return ", found end of expression"
        case .eof: return ", found end of template"
        default: return ", found '\(cur.text)'"
        }
    }
    mutating func expectName() throws(ChatTemplateError) -> String {
        guard cur.kind == .name else { throw syntax("expected a name\(found)", cur.pos) }
        return advance().text
    }
    mutating func expectBlockEnd() throws(ChatTemplateError) {
        guard cur.kind == .blockEnd else { throw syntax("expected end of block tag\(found)", cur.pos) }
        i += 1
    }

    /// Parses nodes until a block tag whose name is in `until`; returns that name (tag still open after it).
    mutating func parseBody(until: Set<String>) throws(ChatTemplateError) -> ([Node], (String, Int)?) {
        var nodes: [Node] = []
        while true {
            let t = cur
            switch t.kind {
            case .eof:
                return (nodes, nil)
            case .data:
                i += 1
                nodes.append(.text(t.text))
            case .varBegin:
                i += 1
                let e = try parseTupleOrExpr()
                guard cur.kind == .varEnd else { throw syntax("expected end of expression '}}'\(found)", cur.pos) }
                i += 1
                nodes.append(.output(e))
            case .blockBegin:
                i += 1
                guard cur.kind == .name else { throw syntax("expected a statement name after '{%'", cur.pos) }
                let name = cur.text
                let pos = cur.pos
                if until.contains(name) {
                    i += 1
                    return (nodes, (name, pos))
                }
                if let n = try parseStatement() { nodes.append(n) }
            default:
                throw syntax("unexpected token '\(t.text)'", t.pos)
            }
        }
    }

    mutating func parseStatement() throws(ChatTemplateError) -> Node? {
        let t = advance()
        try enter(t.pos)
        defer { nesting -= 1 }
        switch t.text {
        case "if":
            var branches: [(Expr, [Node])] = []
            var cond = try parseExpr()
            try expectBlockEnd()
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                guard let end else { throw syntax("unclosed 'if' (missing endif)", t.pos) }
                branches.append((cond, body))
                switch end.0 {
                case "elif":
                    cond = try parseExpr()
                    try expectBlockEnd()
                case "else":
                    try expectBlockEnd()
                    let (elseBody, end2) = try parseBody(until: ["endif"])
                    guard end2 != nil else { throw syntax("unclosed 'if' (missing endif)", t.pos) }
                    try expectBlockEnd()
                    return .ifChain(branches, elseBody)
                default:
                    try expectBlockEnd()
                    return .ifChain(branches, nil)
                }
            }
        case "for":
            var targets: [String] = []
            let paren = isOp("(")
            if paren { i += 1 }
            targets.append(try expectName())
            while isOp(",") {
                i += 1
                targets.append(try expectName())
            }
            if paren { try expectOp(")") }
            guard isName("in") else { throw syntax("expected 'in' in for loop\(found)", cur.pos) }
            i += 1
            let iter = try parseExpr(withCondition: false)
            var filter: Expr? = nil
            if isName("if") {
                i += 1
                filter = try parseExpr()
            }
            if isName("recursive") { throw unsupported("recursive for loop", cur.pos) }
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            guard let end else { throw syntax("unclosed 'for' (missing endfor)", t.pos) }
            var elseBody: [Node]? = nil
            try expectBlockEnd()
            if end.0 == "else" {
                let (eb, end2) = try parseBody(until: ["endfor"])
                guard end2 != nil else { throw syntax("unclosed 'for' (missing endfor)", t.pos) }
                try expectBlockEnd()
                elseBody = eb
            }
            return .forLoop(targets: targets, iter: iter, filter: filter, body: body, elseBody: elseBody, pos: t.pos)
        case "set":
            let first = try expectName()
            var target: SetTarget
            if isOp(".") {
                i += 1
                target = .attr(first, try expectName())
            } else {
                var names = [first]
                while isOp(",") {
                    i += 1
                    names.append(try expectName())
                }
                target = .names(names)
            }
            if isOp("=") {
                i += 1
                let e = try parseTupleOrExpr()
                try expectBlockEnd()
                return .set(target, e, pos: t.pos)
            }
            if isOp("|") { throw unsupported("filtered block set", cur.pos) }
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["endset"])
            guard end != nil else { throw syntax("unclosed 'set' block (missing endset)", t.pos) }
            try expectBlockEnd()
            return .setBlock(target, body, pos: t.pos)
        case "macro":
            let name = try expectName()
            try expectOp("(")
            var params: [(String, Expr?)] = []
            while !isOp(")") {
                let p = try expectName()
                var def: Expr? = nil
                if isOp("=") {
                    i += 1
                    def = try parseExpr()
                }
                params.append((p, def))
                if isOp(",") { i += 1 } else { break }
            }
            try expectOp(")")
            try expectBlockEnd()
            macroNames.insert(name)
            let (body, end) = try parseBody(until: ["endmacro"])
            guard end != nil else { throw syntax("unclosed 'macro' (missing endmacro)", t.pos) }
            if cur.kind == .name { i += 1 } // {% endmacro name %}
            try expectBlockEnd()
            return .macro(name: name, params: params, body: body)
        case "break":
            try expectBlockEnd()
            return .loopBreak(pos: t.pos)
        case "continue":
            try expectBlockEnd()
            return .loopContinue(pos: t.pos)
        case "generation":
            // transformers' AssistantTracker tag: renders its body unchanged.
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["endgeneration"])
            guard end != nil else { throw syntax("unclosed 'generation' (missing endgeneration)", t.pos) }
            try expectBlockEnd()
            return .ifChain([(Expr(kind: .literal(.bool(true)), pos: t.pos), body)], nil)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration", "endraw", "endblock",
             "endfilter", "endcall", "endwith", "endautoescape":
            throw syntax("unexpected '\(t.text)'", t.pos)
        default:
            throw unsupported("{% \(t.text) %}", t.pos)
        }
    }

    // MARK: Expressions

    mutating func parseTupleOrExpr() throws(ChatTemplateError) -> Expr {
        let start = cur.pos
        let e = try parseExpr()
        guard isOp(",") else { return e }
        var items = [e]
        while isOp(",") {
            i += 1
            if cur.kind == .blockEnd || cur.kind == .varEnd { break }
            items.append(try parseExpr())
        }
        return Expr(kind: .tuple(items), pos: start)
    }

    mutating func parseExpr(withCondition: Bool = true) throws(ChatTemplateError) -> Expr {
        try enter(cur.pos)
        defer { nesting -= 1 }
        let e = try parseOr()
        guard withCondition, isName("if") else { return e }
        let pos = cur.pos
        i += 1
        let cond = try parseOr()
        var other: Expr? = nil
        if isName("else") {
            i += 1
            other = try parseExpr()
        }
        return Expr(kind: .cond(e, cond, other), pos: pos)
    }

    mutating func parseOr() throws(ChatTemplateError) -> Expr {
        var l = try parseAnd()
        while isName("or") {
            let pos = advance().pos
            l = Expr(kind: .or(l, try parseAnd()), pos: pos)
        }
        return l
    }

    mutating func parseAnd() throws(ChatTemplateError) -> Expr {
        var l = try parseNot()
        while isName("and") {
            let pos = advance().pos
            l = Expr(kind: .and(l, try parseNot()), pos: pos)
        }
        return l
    }

    mutating func parseNot() throws(ChatTemplateError) -> Expr {
        if isName("not") {
            let pos = advance().pos
            try enter(pos)
            defer { nesting -= 1 }
            return Expr(kind: .unary("not", try parseNot()), pos: pos)
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws(ChatTemplateError) -> Expr {
        let l = try parseMath1()
        var ops: [(String, Expr)] = []
        while true {
            if cur.kind == .op, ["==", "!=", "<", "<=", ">", ">="].contains(cur.text) {
                let op = advance().text
                ops.append((op, try parseMath1()))
            } else if isName("in") {
                i += 1
                ops.append(("in", try parseMath1()))
            } else if isName("not"), peek().kind == .name, peek().text == "in" {
                i += 2
                ops.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? l : Expr(kind: .compare(l, ops), pos: l.pos)
    }

    mutating func parseMath1() throws(ChatTemplateError) -> Expr {
        var l = try parseConcat()
        while cur.kind == .op, cur.text == "+" || cur.text == "-" {
            let t = advance()
            l = Expr(kind: .binary(t.text, l, try parseConcat()), pos: t.pos)
        }
        return l
    }

    mutating func parseConcat() throws(ChatTemplateError) -> Expr {
        var l = try parseMath2()
        while isOp("~") {
            let t = advance()
            l = Expr(kind: .binary("~", l, try parseMath2()), pos: t.pos)
        }
        return l
    }

    mutating func parseMath2() throws(ChatTemplateError) -> Expr {
        var l = try parsePow()
        while cur.kind == .op, ["*", "/", "//", "%"].contains(cur.text) {
            let t = advance()
            l = Expr(kind: .binary(t.text, l, try parsePow()), pos: t.pos)
        }
        return l
    }

    mutating func parsePow() throws(ChatTemplateError) -> Expr {
        var l = try parseUnary()
        while isOp("**") {
            let t = advance()
            l = Expr(kind: .binary("**", l, try parseUnary()), pos: t.pos)
        }
        return l
    }

    /// jinja2: unary minus binds tighter than filters (`-3 | abs` is `(-3) | abs`).
    mutating func parseUnary(withFilter: Bool = true) throws(ChatTemplateError) -> Expr {
        var e: Expr
        if isOp("-") || isOp("+") {
            let t = advance()
            try enter(t.pos)
            defer { nesting -= 1 }
            e = Expr(kind: .unary(t.text, try parseUnary(withFilter: false)), pos: t.pos)
        } else {
            e = try parsePostfix(try parsePrimary())
        }
        return withFilter ? try parseFilterAndTest(e) : e
    }

    mutating func parsePrimary() throws(ChatTemplateError) -> Expr {
        let t = cur
        switch t.kind {
        case .name:
            i += 1
            switch t.text {
            case "true", "True": return Expr(kind: .literal(.bool(true)), pos: t.pos)
            case "false", "False": return Expr(kind: .literal(.bool(false)), pos: t.pos)
            case "none", "None": return Expr(kind: .literal(.none), pos: t.pos)
            default: return Expr(kind: .name(t.text), pos: t.pos)
            }
        case .string:
            i += 1
            var s = t.text
            while cur.kind == .string { s += advance().text } // adjacent literals concatenate
            return Expr(kind: .literal(.string(s)), pos: t.pos)
        case .int:
            i += 1
            guard let v = Int(t.text) else { throw unsupported("integer literal \(t.text)", t.pos) }
            return Expr(kind: .literal(.int(v)), pos: t.pos)
        case .float:
            i += 1
            guard let v = Double(t.text) else { throw syntax("bad number \(t.text)", t.pos) }
            return Expr(kind: .literal(.double(v)), pos: t.pos)
        case .op:
            if t.text == "(" {
                i += 1
                if isOp(")") {
                    i += 1
                    return Expr(kind: .tuple([]), pos: t.pos)
                }
                let e = try parseExpr()
                if isOp(",") {
                    var items = [e]
                    while isOp(",") {
                        i += 1
                        if isOp(")") { break }
                        items.append(try parseExpr())
                    }
                    try expectOp(")")
                    return Expr(kind: .tuple(items), pos: t.pos)
                }
                try expectOp(")")
                return e
            }
            if t.text == "[" {
                i += 1
                var items: [Expr] = []
                while !isOp("]") {
                    items.append(try parseExpr())
                    if isOp(",") { i += 1 } else { break }
                }
                try expectOp("]")
                return Expr(kind: .list(items), pos: t.pos)
            }
            if t.text == "{" {
                i += 1
                var pairs: [(Expr, Expr)] = []
                while !isOp("}") {
                    let k = try parseExpr()
                    try expectOp(":")
                    let v = try parseExpr()
                    pairs.append((k, v))
                    if isOp(",") { i += 1 } else { break }
                }
                try expectOp("}")
                return Expr(kind: .dict(pairs), pos: t.pos)
            }
            throw syntax("unexpected '\(t.text)'", t.pos)
        default:
            throw syntax("expected an expression\(found)", t.pos)
        }
    }

    mutating func parseArgs() throws(ChatTemplateError) -> ([Expr], [(String, Expr)]) {
        // cur is "("
        i += 1
        var args: [Expr] = []
        var kwargs: [(String, Expr)] = []
        while !isOp(")") {
            if isOp("*") || isOp("**") { throw unsupported("*args/**kwargs in a call", cur.pos) }
            if cur.kind == .name, peek().kind == .op, peek().text == "=" {
                let k = advance().text
                i += 1
                kwargs.append((k, try parseExpr()))
            } else {
                if !kwargs.isEmpty { throw syntax("positional argument after keyword argument", cur.pos) }
                args.append(try parseExpr())
            }
            if isOp(",") { i += 1 } else { break }
        }
        try expectOp(")")
        return (args, kwargs)
    }

    mutating func parsePostfix(_ base: Expr) throws(ChatTemplateError) -> Expr {
        var e = base
        while true {
            if isOp(".") {
                let pos = advance().pos
                if cur.kind == .int {
                    let t = advance()
                    e = Expr(kind: .item(e, Expr(kind: .literal(.int(Int(t.text) ?? 0)), pos: t.pos)), pos: pos)
                    continue
                }
                let name = try expectName()
                if isOp("("), !Builtins.methods.contains(name) {
                    throw unsupported("method .\(name)()", pos)
                }
                e = Expr(kind: .attr(e, name), pos: pos)
            } else if isOp("[") {
                let pos = advance().pos
                var parts: [Expr?] = []
                var cur0: Expr? = nil
                var isSlice = false
                while true {
                    if isOp(":") {
                        isSlice = true
                        parts.append(cur0)
                        cur0 = nil
                        i += 1
                        continue
                    }
                    if isOp("]") { break }
                    cur0 = try parseExpr()
                }
                parts.append(cur0)
                try expectOp("]")
                if isSlice {
                    guard parts.count <= 3 else { throw syntax("too many ':' in slice", pos) }
                    while parts.count < 3 { parts.append(nil) }
                    e = Expr(kind: .slice(e, parts[0], parts[1], parts[2]), pos: pos)
                } else {
                    guard let idx = parts[0] else { throw syntax("empty subscript", pos) }
                    e = Expr(kind: .item(e, idx), pos: pos)
                }
            } else if isOp("(") {
                let pos = cur.pos
                if case .name(let n) = e.kind { callSites.append((n, e.pos)) }
                let (args, kwargs) = try parseArgs()
                e = Expr(kind: .call(e, args, kwargs), pos: pos)
            } else {
                return e
            }
        }
    }

    mutating func parseFilterAndTest(_ base: Expr) throws(ChatTemplateError) -> Expr {
        var e = base
        while true {
            if isOp("|") {
                let pos = advance().pos
                let name = try expectName()
                guard Builtins.filters.contains(name) else { throw unsupported("filter '\(name)'", pos) }
                var args: [Expr] = []
                var kwargs: [(String, Expr)] = []
                if isOp("(") { (args, kwargs) = try parseArgs() }
                e = Expr(kind: .filter(e, name, args, kwargs), pos: pos)
                e = try parsePostfix(e)
            } else if isName("is") {
                let pos = advance().pos
                var negated = false
                if isName("not") {
                    negated = true
                    i += 1
                }
                var name: String
                if cur.kind == .name {
                    name = advance().text
                } else if cur.kind == .op, ["==", "!=", "<", "<=", ">", ">="].contains(cur.text) {
                    name = advance().text
                } else {
                    throw syntax("expected a test name after 'is'\(found)", cur.pos)
                }
                if name == "none" || name == "None" { name = "none" }
                if name == "True" { name = "true" }
                if name == "False" { name = "false" }
                guard Builtins.tests.contains(name) else { throw unsupported("test 'is \(name)'", pos) }
                var args: [Expr] = []
                if isOp("(") {
                    let (a, kw) = try parseArgs()
                    if !kw.isEmpty { throw unsupported("keyword arguments to a test", pos) }
                    args = a
                } else if [.name, .string, .int, .float].contains(cur.kind) || isOp("[") || isOp("{"),
                          !(cur.kind == .name && ["else", "or", "and", "if", "is", "in", "not"].contains(cur.text)) {
                    var a = try parsePrimary()
                    a = try parsePostfix(a)
                    args = [a]
                }
                e = Expr(kind: .test(e, name, args, negated: negated), pos: pos)
            } else {
                return e
            }
        }
    }
}
