enum Fragment {
    case text(Range<Int>)
    case token(Int32)
}

extension Tokenizer {
    /// Tokenizes `text`. `addBOS` (llama.cpp's add_special) adds BOS (and EOS when the model
    /// asks for it) only when the model's `add_bos_token` is true. With `parseSpecial`, texts of
    /// control tokens become their ids; user-defined tokens are always matched. GLM models get
    /// their `[gMASK]<sop>` prefix (`promptPrefix`) whenever special tokens are added.
    ///
    /// `literal` lists UTF-8 byte ranges of `text` in which control-token texts stay plain text
    /// even with `parseSpecial` (a chat message's content inside its rendered template: a user
    /// who types `<|im_start|>` must not open a turn). Outside them nothing changes, so text
    /// without such markers tokenizes exactly as before.
    public func encode(_ text: String, addBOS: Bool = true, parseSpecial: Bool = false, literal: [Range<Int>] = []) -> [Int32] {
        var s = text
        return s.withUTF8 { buf in encodeBytes(buf, addSpecial: addBOS, parseSpecial: parseSpecial, literal: literal) }
    }

    /// The control tokens whose texts occur in `text` (what `parseSpecial` would turn into ids).
    public func controlTokenTexts(in text: String) -> [String] {
        var s = text
        return s.withUTF8 { buf in
            partition(buf, parseSpecial: true).compactMap { f -> String? in
                guard case .token(let id) = f, types[Int(id)] != .userDefined else { return nil }
                return String(decoding: table.bytes(of: Int(id)), as: UTF8.self)
            }
        }
    }

    func encodeBytes(_ buf: UnsafeBufferPointer<UInt8>, addSpecial: Bool, parseSpecial: Bool, literal: [Range<Int>] = []) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(buf.count / 3 + 2)
        if addSpecial && addBOS, let bos = bosID { out.append(bos) }
        let frags = partition(buf, parseSpecial: parseSpecial, literal: literal)
        switch kind {
        case .spm:
            var prevSpecial = true
            var scratch: [UInt8] = []
            for f in frags {
                switch f {
                case .token(let id):
                    out.append(id); prevSpecial = true
                case .text(let r):
                    scratch.removeAll(keepingCapacity: true)
                    if addSpacePrefix && prevSpecial { scratch.append(contentsOf: [0xE2, 0x96, 0x81]) }
                    for k in r {
                        let b = buf[k]
                        if b == 0x20 { scratch.append(contentsOf: [0xE2, 0x96, 0x81]) } else { scratch.append(b) }
                    }
                    spmTokenize(scratch, into: &out)
                    prevSpecial = false
                }
            }
        case .bpe:
            for f in frags {
                switch f {
                case .token(let id): out.append(id)
                case .text(let r): bpeTokenize(UnsafeBufferPointer(rebasing: buf[r]), into: &out)
                }
            }
        }
        if addSpecial && addEOS, let eos = eosID { out.append(eos) }
        if addSpecial && !promptPrefix.isEmpty {
            if addBOS, bosID == promptPrefix[0], out.first == bosID { out.removeFirst() }
            if !out.starts(with: promptPrefix) { out.insert(contentsOf: promptPrefix, at: 0) }
        }
        return out
    }

    /// Splits raw text around special-token texts. Tokens are tried longest first; each one
    /// claims its non-overlapping occurrences (left to right) in text not yet claimed.
    func partition(_ buf: UnsafeBufferPointer<UInt8>, parseSpecial: Bool, literal: [Range<Int>] = []) -> [Fragment] {
        let n = buf.count
        guard n > 0 else { return [] }
        guard !specials.isEmpty, let base = buf.baseAddress else { return [.text(0..<n)] }
        // Bytes inside a literal range: control tokens are not matched over them.
        var plain: [Bool] = []
        if parseSpecial && !literal.isEmpty {
            plain = [Bool](repeating: false, count: n)
            for r in literal { for k in max(0, r.lowerBound)..<min(n, max(r.upperBound, r.lowerBound)) { plain[k] = true } }
        }
        // Candidate occurrences: (order of token in `specials`, start).
        var cands: [(order: Int32, start: Int32, id: Int32)] = []
        for i in 0..<n where specialFirstBytes[Int(buf[i])] {
            for len in specialLengths where i + len <= n {
                guard let id = table.lookup(base + i, len) else { continue }
                let t = types[Int(id)]
                guard t == .control || t == .userDefined || t == .unknown else { continue }
                if t != .userDefined {
                    if !parseSpecial { continue }
                    if !plain.isEmpty, plain[i..<(i + len)].contains(true) { continue }
                }
                guard let o = specialOrder[id] else { continue }
                cands.append((o, Int32(i), id))
            }
        }
        if cands.isEmpty { return [.text(0..<n)] }
        cands.sort { $0.order != $1.order ? $0.order < $1.order : $0.start < $1.start }
        var claimed = [Bool](repeating: false, count: n)
        var tokenAt = [Int32](repeating: -1, count: n)
        for c in cands {
            let s = Int(c.start)
            let len = table.bytes(of: Int(c.id)).count
            var free = true
            for k in s..<(s + len) where claimed[k] { free = false; break }
            guard free else { continue }
            for k in s..<(s + len) { claimed[k] = true }
            tokenAt[s] = c.id
        }
        var frags: [Fragment] = []
        var i = 0
        var textStart = 0
        while i < n {
            let id = tokenAt[i]
            if id >= 0 {
                if textStart < i { frags.append(.text(textStart..<i)) }
                frags.append(.token(id))
                i += table.bytes(of: Int(id)).count
                textStart = i
            } else {
                i += 1
            }
        }
        if textStart < n { frags.append(.text(textStart..<n)) }
        return frags
    }

    // MARK: SentencePiece

    /// llama.cpp-style SPM: start from UTF-8 characters, repeatedly merge the adjacent pair whose
    /// concatenation is a vocabulary piece with the highest score (ties: leftmost).
    func spmTokenize(_ text: [UInt8], into out: inout [Int32]) {
        let n = text.count
        guard n > 0 else { return }
        text.withUnsafeBufferPointer { tb in
            guard let base = tb.baseAddress else { return }
            var start: [Int] = []
            var len: [Int] = []
            var i = 0
            while i < n {
                let b = tb[i]
                var l = 1
                if b >= 0xF0 { l = 4 } else if b >= 0xE0 { l = 3 } else if b >= 0xC0 { l = 2 }
                l = min(l, n - i)
                start.append(i); len.append(l)
                i += l
            }
            let count = start.count
            var prev = [Int](repeating: -1, count: count)
            var next = [Int](repeating: -1, count: count)
            for k in 0..<count { prev[k] = k - 1; next[k] = k + 1 < count ? k + 1 : -1 }

            var heap = BigramHeap()
            func tryAdd(_ l: Int, _ r: Int) {
                guard l >= 0, r >= 0 else { return }
                let size = len[l] + len[r]
                guard let id = table.lookup(base + start[l], size) else { return }
                let score = Int(id) < scores.count ? scores[Int(id)] : 0
                heap.push(Bigram(score: score, rank: 0, left: l, right: r, size: size))
            }
            for k in 1..<max(count, 1) { tryAdd(k - 1, k) }
            while let bg = heap.pop() {
                let l = bg.left, r = bg.right
                if len[l] == 0 || len[r] == 0 || len[l] + len[r] != bg.size { continue }
                len[l] += len[r]
                len[r] = 0
                next[l] = next[r]
                if next[r] >= 0 { prev[next[r]] = l }
                tryAdd(prev[l], l)
                tryAdd(l, next[l])
            }
            var k = 0
            while k >= 0 && k < count {
                if len[k] > 0 {
                    if let id = table.lookup(base + start[k], len[k]) {
                        out.append(id)
                    } else {
                        for j in start[k]..<(start[k] + len[k]) {
                            let bt = byteTokens[Int(tb[j])]
                            if bt >= 0 { out.append(bt) } else if let u = unkID { out.append(u) }
                        }
                    }
                }
                k = next[k]
            }
        }
    }

    // MARK: Byte-level BPE

    func bpeTokenize(_ text: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        guard let pre else { return }
        let words = pre.split(text)
        var ignoreMerges = false
        if case .llama3Style(_, let im) = pre.kind { ignoreMerges = im }
        var cache: [ArraySlice<UInt8>: [Int32]] = [:]
        var mapped: [UInt8] = []
        for w in words {
            let slice = text[w]
            let key = ArraySlice(slice)
            if let hit = cache[key] { out.append(contentsOf: hit); continue }
            var ids: [Int32] = []
            if ignoreMerges {
                mapped.removeAll(keepingCapacity: true)
                for b in slice { mapped.append(contentsOf: GPT2Bytes.encoded[Int(b)]) }
                if let id = table.lookup(mapped) {
                    ids = [id]
                }
            }
            if ids.isEmpty { ids = bpeWord(slice) }
            if cache.count < 65536 { cache[key] = ids }
            out.append(contentsOf: ids)
        }
    }

    /// Merges one pre-token by rank (lowest first, ties leftmost).
    func bpeWord(_ word: Slice<UnsafeBufferPointer<UInt8>>) -> [Int32] {
        let count = word.count
        var sym = [Int32](repeating: -1, count: count)
        var bytesOf = [UInt8](repeating: 0, count: count)
        var alive = [Int](repeating: 1, count: count) // number of bytes, 0 when merged away
        var prev = [Int](repeating: -1, count: count)
        var next = [Int](repeating: -1, count: count)
        for (k, b) in word.enumerated() {
            sym[k] = byteTokens[Int(b)]
            bytesOf[k] = b
            prev[k] = k - 1
            next[k] = k + 1 < count ? k + 1 : -1
        }
        if count == 1 {
            return sym[0] >= 0 ? [sym[0]] : []
        }
        var heap = BigramHeap(byRank: true)
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, sym[l] >= 0, sym[r] >= 0 else { return }
            let key = UInt64(UInt32(bitPattern: sym[l])) << 32 | UInt64(UInt32(bitPattern: sym[r]))
            guard let m = merges[key] else { return }
            heap.push(Bigram(score: 0, rank: Int(m >> 32), left: l, right: r, size: alive[l] + alive[r],
                             result: Int32(truncatingIfNeeded: UInt32(m & 0xFFFF_FFFF))))
        }
        for k in 1..<count { tryAdd(k - 1, k) }
        while let bg = heap.pop() {
            let l = bg.left, r = bg.right
            if alive[l] == 0 || alive[r] == 0 || alive[l] + alive[r] != bg.size { continue }
            alive[l] += alive[r]
            alive[r] = 0
            sym[l] = bg.result
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }
        var ids: [Int32] = []
        var k = 0
        while k >= 0 {
            if sym[k] >= 0 {
                ids.append(sym[k])
            } else {
                // The merged text is not a vocabulary piece: fall back to per-byte tokens.
                for j in k..<(k + alive[k]) {
                    let bt = byteTokens[Int(bytesOf[j])]
                    if bt >= 0 { ids.append(bt) }
                }
            }
            k = next[k]
        }
        return ids
    }
}

struct Bigram {
    var score: Float
    var rank: Int
    var left: Int
    var right: Int
    var size: Int
    var result: Int32 = -1
}

/// Binary heap of bigrams. `pop` yields highest score (ties: smallest left); `popMinRank`
/// yields lowest rank (ties: smallest left). A heap instance uses one ordering only.
struct BigramHeap {
    var items: [Bigram] = []
    let byRank: Bool

    init(byRank: Bool = false) { self.byRank = byRank }

    @inline(__always) func before(_ a: Bigram, _ b: Bigram) -> Bool {
        if byRank { return a.rank != b.rank ? a.rank < b.rank : a.left < b.left }
        return a.score != b.score ? a.score > b.score : a.left < b.left
    }

    mutating func push(_ x: Bigram) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if before(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> Bigram? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && before(items[l], items[m]) { m = l }
                if r < n && before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}
