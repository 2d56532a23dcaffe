/// Defaults of the serving front door that several layers must agree on (the server, the CLI
/// flags, the alerts `deploy render` writes from them).
public enum ServingDefaults {
    /// Waiting sequences before new requests get 429 (`serve --max-queue`, `up --max-queue`).
    public static let maxQueue = 64
}
