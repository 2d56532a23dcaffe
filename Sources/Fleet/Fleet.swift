/// The local fleet behind `autoglm up`. Who owns what:
/// - `Supervisor`: the replica processes (one `ManagedServer` each), their start, restart and stop.
/// - `Gateway`: the front door's replica choice (`ReplicaPool`, the balancing policies).
/// - `Autoscaler`: pure decisions from samples (rules and the forecast); the fleet loop applies them.
/// - `CanaryJudge`: pure verdicts from the stable and canary sets' tallies.
public enum Fleet {}
