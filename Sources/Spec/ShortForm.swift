import Core

/// The short form of `autoglm.yaml`: the shape of the project's seed example, accepted unchanged
/// and mapped key by key onto the canonical spec (what `autoglm validate --print` shows).
///
/// ```yaml
/// model: THUDM/glm-4-9b-chat      # → model.ref (and the backend, below)
/// version: v1.0                    # → model.version: 1.0.0
/// quant: Q4_K_M                    # → the GGUF of that quantization: model.ref hf://ORG/REPO:Q4_K_M
/// replicas: 3
/// resources:
///   limits: {nvidia.com/gpu: 1, memory: 24Gi}   # → resources.nvidia.com/gpu, resources.memory
/// autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 10}
/// ```
///
/// A spec is in the short form when `model` is a string. Then `apiVersion` may be left out, and
/// a missing `name` is derived from the model (`derivedName`).
public enum ShortForm {
    /// The quantization a short-form repository model gets when the spec has no `quant`.
    public static let defaultQuant = "Q4_K_M"

    /// What serves a short-form model (the one rule; `validate` reports what it chose):
    /// - `backend.type` given: that backend;
    /// - a Hugging Face repository (`ORG/REPO`, `hf://ORG/REPO[@REV]`) and a GPU in `resources`:
    ///   `vllm`, which loads the repository's safetensors on the GPU;
    /// - a Hugging Face repository and no GPU: `native`, which serves the repository's GGUF file of
    ///   `quant` (default `defaultQuant`) on the CPU;
    /// - any other model (an alias, `hf://…/FILE.gguf`, `hf://…:QUANT`, a path, a URL): `native`,
    ///   as in the canonical form.
    /// The reason is nil when there was nothing to choose.
    public static func backend(explicit: BackendType?, gpus: Int, model: String) -> (type: BackendType, reason: String?) {
        if let explicit { return (explicit, nil) }
        guard let repo = repository(model)?.repo else { return (.native, nil) }
        if gpus > 0 {
            return (.vllm, "model '\(repo)' is a Hugging Face repository and resources ask for nvidia.com/gpu: \(gpus), so backend vllm serves its safetensors (set backend.type to choose another backend)")
        }
        return (.native, "model '\(repo)' is a Hugging Face repository and resources ask for no GPU, so the native engine serves its GGUF file (set backend.type: vllm and a GPU for a safetensors-only repository)")
    }

    /// `ORG/REPO`, `hf://ORG/REPO` or `hf://ORG/REPO@REVISION`: a whole repository.
    public static func repository(_ model: String) -> (repo: String, revision: String?)? {
        if let id = RefSyntax.repoID(model) { return (id.hasPrefix("hf://") ? String(id.dropFirst(5)) : id, nil) }
        if let h = RefSyntax.hubRepository(model) { return (h.repo, h.revision == "main" ? nil : h.revision) }
        return nil
    }

    /// A DNS-1123 label from the model: the repository's (or file's, alias's) name in lowercase,
    /// every run of other characters as one '-', at most 63 characters
    /// (`THUDM/glm-4-9b-chat` → `glm-4-9b-chat`, `Qwen/Qwen2.5-0.5B` → `qwen2-5-0-5b`); nil when
    /// nothing is left.
    public static func derivedName(_ model: String) -> String? {
        var base = model
        if let r = repository(model) {
            base = r.repo
        } else if let q = RefSyntax.hubQuant(model) {
            base = q.repo
        }
        var last = base.split(separator: "/").last.map(String.init) ?? base
        if last.lowercased().hasSuffix(".gguf") { last = String(last.dropLast(5)) }
        if let colon = last.firstIndex(of: ":"), repository(model) == nil, RefSyntax.hubQuant(model) == nil {
            last = String(last[..<colon])
        }
        var out = ""
        for c in last.lowercased() {
            if c.isASCII && (c.isLetter || c.isNumber) { out.append(c) } else if !out.hasSuffix("-") { out.append("-") }
        }
        while out.hasPrefix("-") { out.removeFirst() }
        out = String(out.prefix(63))
        while out.hasSuffix("-") { out.removeLast() }
        return out.isEmpty ? nil : out
    }

    /// A short-form `version` as the canonical SemVer `model.version`: an optional `v`, then
    /// MAJOR[.MINOR[.PATCH]] (missing parts are 0) and SemVer's optional -PRERELEASE/+BUILD
    /// (`v1.0` → `1.0.0`, `2` → `2.0.0`, `1.2.3-rc.1` stays); nil when it is none of these.
    public static func normalizedVersion(_ raw: String) -> String? {
        var s = Substring(raw)
        if s.first == "v" || s.first == "V" { s = s.dropFirst() }
        let coreEnd = s.firstIndex(where: { $0 == "-" || $0 == "+" }) ?? s.endIndex
        var parts = s[..<coreEnd].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count) else { return nil }
        while parts.count < 3 { parts.append("0") }
        let candidate = parts.joined(separator: ".") + s[coreEnd...]
        if case .success = VersionSyntax.parse(candidate) { return candidate }
        return nil
    }
}

extension Spec {
    /// What the backend will fetch from the Hugging Face Hub, for the validate-time check
    /// (`Registry.HubModelCheck`): the ref, the revision, and whether the backend loads a whole
    /// repository (vllm) rather than a GGUF file. nil for backend openai (the upstream owns its models).
    public var hubTarget: (ref: String, revision: String?, loadsRepository: Bool)? {
        switch backend.type {
        case .openai: return nil
        case .vllm: return (model.ref, model.revision, true)
        case .native, .llamacpp: return (model.ref, nil, false)
        }
    }
}
