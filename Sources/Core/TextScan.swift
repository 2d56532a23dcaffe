/// Length of the longest suffix of `text` that is a proper prefix of one of `markers`: what a
/// streamer must hold back because it may be the start of a marker (a stop string, a tool-call tag).
@inlinable public func heldBackCount<E: Equatable>(_ text: [E], markers: [[E]]) -> Int {
    let longest = markers.reduce(0) { max($0, $1.count) }
    let maxLen = min(text.count, longest - 1)
    guard maxLen > 0 else { return 0 }
    for len in stride(from: maxLen, through: 1, by: -1) {
        let start = text.count - len
        for m in markers where m.count > len {
            var ok = true
            for j in 0..<len where text[start + j] != m[j] { ok = false; break }
            if ok { return len }
        }
    }
    return 0
}

extension String {
    /// The string without leading and trailing whitespace (Unicode's definition).
    public func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
