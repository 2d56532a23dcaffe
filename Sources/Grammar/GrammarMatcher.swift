/// Runs a `Grammar` over bytes. The state is the set of parse stacks still alive (a pushdown
/// automaton run breadth-first, as llama.cpp's grammar sampler does); stacks are interned as
/// (position, parent) nodes so they share their tails, and stack sets are interned too, so a
/// transition (set, byte) → set is computed once and then read from a table. What the tables
/// cache is a lazily built DFA over the grammar's reachable states.
///
/// Ownership: a matcher belongs to one sequence and is driven by one thread at a time; its
/// `GrammarRuntime` (the tables) is shared only by copies of that matcher (not `Sendable`).
public struct GrammarMatcher {
    let runtime: GrammarRuntime
    /// The current state (a set id in the runtime); `GrammarRuntime.dead` when nothing matches.
    public private(set) var state: Int32

    public init(_ grammar: Grammar) {
        runtime = GrammarRuntime(grammar)
        state = runtime.initial
    }

    init(runtime: GrammarRuntime, state: Int32) {
        self.runtime = runtime
        self.state = state
    }

    /// True when the bytes so far form a complete sentence of the grammar.
    public var isAccepting: Bool { runtime.accepting(state) }
    /// True when some byte can still follow.
    public var canContinue: Bool { !runtime.allowedBytes(state).isEmpty }
    /// True when no byte can follow and the input is complete: generation must end here.
    public var isComplete: Bool { isAccepting && !canContinue }
    public var isDead: Bool { state == GrammarRuntime.dead }
    /// Token masks computed so far (the rest came from the per-state cache).
    public var masksBuilt: Int { runtime.masksBuilt }
    /// The bytes that may come next.
    public var allowedBytes: ByteSet { runtime.allowedBytes(state) }

    /// Consumes one byte; false (state unchanged) when the grammar does not allow it.
    @discardableResult
    public mutating func advance(_ byte: UInt8) -> Bool {
        let next = runtime.step(state, byte)
        guard next != GrammarRuntime.dead else { return false }
        state = next
        return true
    }

    /// Consumes all bytes, or none (false) when one of them is refused.
    @discardableResult
    public mutating func advance<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        var s = state
        for b in bytes {
            s = runtime.step(s, b)
            if s == GrammarRuntime.dead { return false }
        }
        state = s
        return true
    }

    /// Whether `bytes` could be consumed from here (state unchanged).
    public func accepts<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
        var s = state
        for b in bytes {
            s = runtime.step(s, b)
            if s == GrammarRuntime.dead { return false }
        }
        return true
    }
}

/// The interned stacks, stack sets and transition tables of one grammar. Not thread-safe: owned by
/// the matcher(s) of one sequence, which one thread drives at a time.
final class GrammarRuntime {
    static let dead: Int32 = -1
    /// The stack with nothing left to match (the input is complete).
    static let emptyStack: Int32 = -1

    enum Element {
        case bytes(Int32)   // index into `sets`
        case rule(Int32)    // rule id
        case end            // end of an alternative
    }

    // The grammar, flattened: every alternative's symbols followed by `.end`.
    var elements: [Element] = []
    var byteSets: [ByteSet] = []
    var alternatives: [[Int32]] = []   // per rule, the start positions of its alternatives

    // Stack nodes: top position and the node below (or -1).
    var nodePos: [Int32] = []
    var nodeParent: [Int32] = []
    var nodeIndex: [UInt64: Int32] = [:]
    var expandCache: [UInt64: [Int32]] = [:]

    // Stack sets (sorted node ids, `emptyStack` first when present) and their transitions.
    var setMembers: [[Int32]] = []
    var setIndex: [[Int32]: Int32] = [:]
    var setAllowed: [ByteSet] = []
    /// 256 entries per set: the next set, `dead`, or -2 (not computed yet).
    var transitions: [Int32] = []
    var initial: Int32 = GrammarRuntime.dead
    /// Token masks per state (see `TokenVocabulary`), bounded.
    var masks: [Int32: [UInt64]] = [:]
    /// Masks computed (not read from `masks`), since the matcher was made.
    var masksBuilt = 0
    let maxMasks = 512

    init(_ g: Grammar) {
        var setIDs: [ByteSet: Int32] = [:]
        var starts: [[Int32]] = []
        for r in g.rules {
            var s: [Int32] = []
            for alt in r.alternatives {
                s.append(Int32(elements.count))
                for sym in alt {
                    switch sym {
                    case .bytes(let b):
                        let id: Int32
                        if let k = setIDs[b] { id = k } else {
                            id = Int32(byteSets.count); byteSets.append(b); setIDs[b] = id
                        }
                        elements.append(.bytes(id))
                    case .rule(let k):
                        elements.append(.rule(Int32(k)))
                    }
                }
                elements.append(.end)
            }
            starts.append(s)
        }
        alternatives = starts
        initial = internSet(expand(rule: Int32(g.root), parent: -1))
    }

    func node(_ pos: Int32, _ parent: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: pos)) << 32 | UInt64(UInt32(bitPattern: parent))
        if let n = nodeIndex[key] { return n }
        let n = Int32(nodePos.count)
        nodePos.append(pos)
        nodeParent.append(parent)
        nodeIndex[key] = n
        return n
    }

    /// The stacks (tops on byte symbols, or `emptyStack`) reached by matching from `pos` with
    /// `parent` below: rule references are replaced by their alternatives, finished alternatives
    /// return to the parent. A reference in tail position pushes nothing, so right recursion
    /// (`x*`) runs in constant stack depth.
    func expand(_ pos: Int32, parent: Int32) -> [Int32] {
        let key = UInt64(UInt32(bitPattern: pos)) << 32 | UInt64(UInt32(bitPattern: parent))
        if let c = expandCache[key] { return c }
        var out: [Int32] = []
        switch elements[Int(pos)] {
        case .bytes:
            out = [node(pos, parent)]
        case .end:
            if parent < 0 { out = [Self.emptyStack] } else {
                out = expand(nodePos[Int(parent)], parent: nodeParent[Int(parent)])
            }
        case .rule(let r):
            var below = parent
            if case .end = elements[Int(pos) + 1] {} else { below = node(pos + 1, parent) }
            out = expand(rule: r, parent: below)
        }
        expandCache[key] = out
        return out
    }

    func expand(rule r: Int32, parent: Int32) -> [Int32] {
        var out: [Int32] = []
        for s in alternatives[Int(r)] { out += expand(s, parent: parent) }
        return out
    }

    func internSet(_ stacks: [Int32]) -> Int32 {
        if stacks.isEmpty { return Self.dead }
        let members = Array(Set(stacks)).sorted()
        if let id = setIndex[members] { return id }
        let id = Int32(setMembers.count)
        setMembers.append(members)
        setIndex[members] = id
        var allowed = ByteSet()
        for n in members where n != Self.emptyStack {
            if case .bytes(let b) = elements[Int(nodePos[Int(n)])] { allowed.formUnion(byteSets[Int(b)]) }
        }
        setAllowed.append(allowed)
        transitions.append(contentsOf: repeatElement(-2, count: 256))
        return id
    }

    func accepting(_ s: Int32) -> Bool { s >= 0 && setMembers[Int(s)].first == Self.emptyStack }
    func allowedBytes(_ s: Int32) -> ByteSet { s >= 0 ? setAllowed[Int(s)] : ByteSet() }

    /// The state after `byte` from state `s` (`dead` when refused).
    @inline(__always)
    func step(_ s: Int32, _ byte: UInt8) -> Int32 {
        guard s >= 0 else { return Self.dead }
        let t = transitions[Int(s) &* 256 &+ Int(byte)]
        if t != -2 { return t }
        return computeStep(s, byte)
    }

    func computeStep(_ s: Int32, _ byte: UInt8) -> Int32 {
        guard setAllowed[Int(s)].contains(byte) else {
            transitions[Int(s) * 256 + Int(byte)] = Self.dead
            return Self.dead
        }
        var next: [Int32] = []
        for n in setMembers[Int(s)] where n != Self.emptyStack {
            let pos = nodePos[Int(n)]
            guard case .bytes(let b) = elements[Int(pos)], byteSets[Int(b)].contains(byte) else { continue }
            next += expand(pos + 1, parent: nodeParent[Int(n)])
        }
        let id = internSet(next)
        transitions[Int(s) * 256 + Int(byte)] = id
        return id
    }
}
