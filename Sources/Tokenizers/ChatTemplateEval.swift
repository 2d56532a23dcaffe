import Foundation

// MARK: - Runtime values

/// A dict with Python's insertion order.
struct ODict {
    var keys: [String] = []
    var map: [String: Value] = [:]

    subscript(key: String) -> Value? {
        get { map[key] }
        set {
            if let v = newValue {
                if map.updateValue(v, forKey: key) == nil { keys.append(key) }
            } else if map.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var count: Int { keys.count }
    var pairs: [(String, Value)] { keys.map { ($0, map[$0] ?? .none) } }
}

final class NamespaceObject {
    var attrs = ODict()
}

final class FunctionObject {
    let name: String
    let call: ([Value], [(String, Value)]) throws(ChatTemplateError) -> Value
    init(_ name: String, _ call: @escaping ([Value], [(String, Value)]) throws(ChatTemplateError) -> Value) {
        self.name = name
        self.call = call
    }
}

enum Value {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(ODict)
    case namespace(NamespaceObject)
    case function(FunctionObject)

    init(_ t: TemplateValue) {
        switch t {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map { Value($0) })
        case .object(let pairs):
            var d = ODict()
            for (k, v) in pairs { d[k] = Value(v) }
            self = .dict(d)
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }

    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }
}

/// A rendering error without a position yet; `Renderer.eval` adds the expression's line and column.
@inline(__always) func fail(_ m: String) -> ChatTemplateError { .runtime(message: m, line: 0, column: 0) }

func undefinedError(_ v: Value) -> ChatTemplateError {
    if case .undefined(let what) = v { return fail("\(what) is undefined") }
    return fail("value is undefined")
}

// MARK: - Renderer

enum Flow { case normal, breakLoop, continueLoop }

final class Renderer {
    let program: TemplateProgram
    let now: Date
    var frames: [[String: Value]] = []
    var out = ""
    var depth = 0

    init(program: TemplateProgram, now: Date) {
        self.program = program
        self.now = now
    }

    func run(context: [String: Value]) throws(ChatTemplateError) -> String {
        var root = context
        root["raise_exception"] = .function(FunctionObject("raise_exception") { args, _ throws(ChatTemplateError) in
            throw ChatTemplateError.raised(message: args.first.map(pyStr) ?? "")
        })
        let now = self.now
        root["strftime_now"] = .function(FunctionObject("strftime_now") { args, _ throws(ChatTemplateError) in
            guard let f = args.first, case .string(let fmt) = f else { throw fail("strftime_now() needs a format string") }
            return .string(try strftime(fmt, now))
        })
        root["namespace"] = .function(FunctionObject("namespace") { args, kwargs throws(ChatTemplateError) in
            let ns = NamespaceObject()
            for a in args {
                guard case .dict(let d) = a else { throw fail("namespace() takes a dict or keyword arguments") }
                for (k, v) in d.pairs { ns.attrs[k] = v }
            }
            for (k, v) in kwargs { ns.attrs[k] = v }
            return .namespace(ns)
        })
        root["dict"] = .function(FunctionObject("dict") { args, kwargs throws(ChatTemplateError) in
            var d = ODict()
            for a in args {
                guard case .dict(let src) = a else { throw fail("dict() takes a dict or keyword arguments") }
                for (k, v) in src.pairs { d[k] = v }
            }
            for (k, v) in kwargs { d[k] = v }
            return .dict(d)
        })
        root["range"] = .function(FunctionObject("range") { args, _ throws(ChatTemplateError) in
            var ints: [Int] = []
            for a in args {
                guard case .int(let v) = a else { throw fail("range() takes integers") }
                ints.append(v)
            }
            var start = 0, stop = 0, step = 1
            switch ints.count {
            case 1: stop = ints[0]
            case 2: start = ints[0]; stop = ints[1]
            case 3: start = ints[0]; stop = ints[1]; step = ints[2]
            default: throw fail("range() takes 1 to 3 arguments")
            }
            guard step != 0 else { throw fail("range() step must not be zero") }
            var r: [Value] = []
            var k = start
            while step > 0 ? k < stop : k > stop {
                r.append(.int(k))
                if r.count > 100_000 { throw fail("range() too large") }
                k += step
            }
            return .list(r)
        })
        frames = [root]
        _ = try exec(program.nodes)
        return out
    }

    func located(_ error: ChatTemplateError, _ pos: Int) -> ChatTemplateError {
        if case .runtime(let m, 0, _) = error {
            let (l, c) = program.location(pos)
            return .runtime(message: m, line: l, column: c)
        }
        return error
    }

    // MARK: Scopes

    func lookup(_ name: String) -> Value {
        var k = frames.count - 1
        while k >= 0 {
            if let v = frames[k][name] { return v }
            k -= 1
        }
        return .undefined("'\(name)'")
    }

    func assign(_ name: String, _ v: Value) {
        frames[frames.count - 1][name] = v
    }

    // MARK: Statements

    func exec(_ nodes: [Node]) throws(ChatTemplateError) -> Flow {
        for node in nodes {
            switch node {
            case .text(let s):
                out += s
            case .output(let e):
                out += pyStr(try eval(e))
            case .ifChain(let branches, let elseBody):
                var taken = false
                for (cond, body) in branches {
                    if truthy(try eval(cond)) {
                        taken = true
                        let f = try exec(body)
                        if f != .normal { return f }
                        break
                    }
                }
                if !taken, let elseBody {
                    let f = try exec(elseBody)
                    if f != .normal { return f }
                }
            case let .forLoop(targets, iterExpr, filter, body, elseBody, pos):
                let f = try execFor(targets: targets, iterExpr: iterExpr, filter: filter, body: body, elseBody: elseBody, pos: pos)
                if f != .normal { return f }
            case let .set(target, e, pos):
                let v = try eval(e)
                try assignTarget(target, v, pos)
            case let .setBlock(target, body, pos):
                let saved = out
                out = ""
                let f = try exec(body)
                let captured = out
                out = saved
                if f != .normal { return f }
                try assignTarget(target, .string(captured), pos)
            case let .macro(name, params, body):
                assign(name, .function(makeMacro(name: name, params: params, body: body)))
            case .loopBreak:
                return .breakLoop
            case .loopContinue:
                return .continueLoop
            }
        }
        return .normal
    }

    func assignTarget(_ target: SetTarget, _ v: Value, _ pos: Int) throws(ChatTemplateError) {
        switch target {
        case .names(let names):
            if names.count == 1 {
                assign(names[0], v)
                return
            }
            let items: [Value]
            do { items = try iterate(v) } catch { throw located(error, pos) }
            guard items.count == names.count else {
                throw located(fail("cannot unpack \(items.count) values into \(names.count) names"), pos)
            }
            for (n, x) in zip(names, items) { assign(n, x) }
        case .attr(let obj, let attr):
            guard case .namespace(let ns) = lookup(obj) else {
                throw located(fail("cannot assign attribute on non-namespace object '\(obj)'"), pos)
            }
            ns.attrs[attr] = v
        }
    }

    func execFor(targets: [String], iterExpr: Expr, filter: Expr?, body: [Node], elseBody: [Node]?, pos: Int) throws(ChatTemplateError) -> Flow {
        let seq = try eval(iterExpr)
        var items: [Value]
        do { items = try iterate(seq) } catch { throw located(error, iterExpr.pos) }
        func bind(_ item: Value) throws(ChatTemplateError) {
            if targets.count == 1 {
                assign(targets[0], item)
            } else {
                let parts: [Value]
                do { parts = try iterate(item) } catch { throw located(error, pos) }
                guard parts.count == targets.count else {
                    throw located(fail("cannot unpack \(parts.count) values into \(targets.count) loop variables"), pos)
                }
                for (n, x) in zip(targets, parts) { assign(n, x) }
            }
        }
        if let filter {
            var kept: [Value] = []
            for item in items {
                frames.append([:])
                defer { frames.removeLast() }
                try bind(item)
                if truthy(try eval(filter)) { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let elseBody { return try exec(elseBody) }
            return .normal
        }
        let n = items.count
        for (k, item) in items.enumerated() {
            var loop = ODict()
            loop["index"] = .int(k + 1)
            loop["index0"] = .int(k)
            loop["revindex"] = .int(n - k)
            loop["revindex0"] = .int(n - k - 1)
            loop["first"] = .bool(k == 0)
            loop["last"] = .bool(k == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = k > 0 ? items[k - 1] : .undefined("loop.previtem")
            loop["nextitem"] = k < n - 1 ? items[k + 1] : .undefined("loop.nextitem")
            loop["cycle"] = .function(FunctionObject("loop.cycle") { args, _ throws(ChatTemplateError) in
                guard !args.isEmpty else { throw fail("loop.cycle() needs at least one argument") }
                return args[k % args.count]
            })
            frames.append(["loop": .dict(loop)])
            let flow: Flow
            do {
                try bind(item)
                flow = try exec(body)
            } catch {
                frames.removeLast()
                throw error
            }
            frames.removeLast()
            if flow == .breakLoop { break }
        }
        return .normal
    }

    func makeMacro(name: String, params: [(String, Expr?)], body: [Node]) -> FunctionObject {
        FunctionObject(name) { [unowned self] args, kwargs throws(ChatTemplateError) in
            guard args.count <= params.count else { throw fail("macro '\(name)' takes \(params.count) arguments, got \(args.count)") }
            self.depth += 1
            defer { self.depth -= 1 }
            guard self.depth < 64 else { throw fail("macro recursion too deep") }
            let savedFrames = self.frames
            let savedOut = self.out
            defer {
                self.frames = savedFrames
                self.out = savedOut
            }
            self.frames = [savedFrames[0], [:]]
            for (k, (p, def)) in params.enumerated() {
                if k < args.count {
                    self.assign(p, args[k])
                } else if let kw = kwargs.last(where: { $0.0 == p }) {
                    self.assign(p, kw.1)
                } else if let def {
                    self.assign(p, try self.eval(def))
                } else {
                    self.assign(p, .undefined("'\(p)'"))
                }
            }
            for (k, _) in kwargs where !params.contains(where: { $0.0 == k }) {
                throw fail("macro '\(name)' has no argument '\(k)'")
            }
            self.out = ""
            _ = try self.exec(body)
            return .string(self.out)
        }
    }

    // MARK: Expressions

    func eval(_ e: Expr) throws(ChatTemplateError) -> Value {
        do {
            return try evalInner(e)
        } catch {
            throw located(error, e.pos)
        }
    }

    func evalInner(_ e: Expr) throws(ChatTemplateError) -> Value {
        switch e.kind {
        case .literal(let l):
            switch l {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let n):
            return lookup(n)
        case .list(let items):
            var r: [Value] = []
            r.reserveCapacity(items.count)
            for x in items { r.append(try eval(x)) }
            return .list(r)
        case .tuple(let items):
            var r: [Value] = []
            r.reserveCapacity(items.count)
            for x in items { r.append(try eval(x)) }
            return .tuple(r)
        case .dict(let pairs):
            var d = ODict()
            for (ke, ve) in pairs {
                let k = try eval(ke)
                guard case .string(let ks) = k else { throw fail("dict literal keys must be strings") }
                d[ks] = try eval(ve)
            }
            return .dict(d)
        case .attr(let obj, let name):
            return try getAttr(try eval(obj), name)
        case .item(let obj, let key):
            let o = try eval(obj)
            return try getItem(o, try eval(key))
        case .slice(let obj, let a, let b, let c):
            let o = try eval(obj)
            let av = try a.map { (x) throws(ChatTemplateError) in try eval(x) }
            let bv = try b.map { (x) throws(ChatTemplateError) in try eval(x) }
            let cv = try c.map { (x) throws(ChatTemplateError) in try eval(x) }
            return try slice(o, av, bv, cv)
        case .call(let callee, let argExprs, let kwExprs):
            let f = try eval(callee)
            var args: [Value] = []
            for a in argExprs { args.append(try eval(a)) }
            var kwargs: [(String, Value)] = []
            for (k, a) in kwExprs { kwargs.append((k, try eval(a))) }
            switch f {
            case .function(let fn): return try fn.call(args, kwargs)
            case .undefined: throw undefinedError(f)
            default: throw fail("'\(f.typeName)' object is not callable")
            }
        case .filter(let obj, let name, let argExprs, let kwExprs):
            let v = try eval(obj)
            var args: [Value] = []
            for a in argExprs { args.append(try eval(a)) }
            var kwargs: [(String, Value)] = []
            for (k, a) in kwExprs { kwargs.append((k, try eval(a))) }
            return try applyFilter(name, v, args, kwargs)
        case .test(let obj, let name, let argExprs, let negated):
            let v = try eval(obj)
            var args: [Value] = []
            for a in argExprs { args.append(try eval(a)) }
            let r = try applyTest(name, v, args)
            return .bool(negated ? !r : r)
        case .unary(let op, let x):
            let v = try eval(x)
            switch op {
            case "not": return .bool(!truthy(v))
            case "-":
                switch v {
                case .int(let i): return .int(-i)
                case .double(let d): return .double(-d)
                case .bool(let b): return .int(b ? -1 : 0)
                case .undefined: throw undefinedError(v)
                default: throw fail("bad operand type for unary -: '\(v.typeName)'")
                }
            default:
                switch v {
                case .int, .double: return v
                case .bool(let b): return .int(b ? 1 : 0)
                case .undefined: throw undefinedError(v)
                default: throw fail("bad operand type for unary +: '\(v.typeName)'")
                }
            }
        case .binary(let op, let l, let r):
            let a = try eval(l)
            let b = try eval(r)
            return try binaryOp(op, a, b)
        case .and(let l, let r):
            let a = try eval(l)
            return truthy(a) ? try eval(r) : a
        case .or(let l, let r):
            let a = try eval(l)
            return truthy(a) ? a : try eval(r)
        case .compare(let first, let ops):
            var left = try eval(first)
            for (op, re) in ops {
                let right = try eval(re)
                if !(try compareOp(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .cond(let then, let cond, let other):
            if truthy(try eval(cond)) { return try eval(then) }
            if let other { return try eval(other) }
            return .undefined("conditional expression without else")
        }
    }
}
