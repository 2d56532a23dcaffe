import Spec

/// Everything that can go wrong talking to a Kubernetes cluster. Every message names what
/// failed and says what to do about it.
public enum KubeError: Error, Sendable, CustomStringConvertible, Equatable {
    // kubeconfig / in-cluster configuration
    case kubeconfigNotFound(searched: [String])
    case kubeconfigInvalid(path: String, reason: String)
    case contextNotFound(String, available: [String], path: String)
    case noCurrentContext(path: String, available: [String])
    case clusterNotFound(String, context: String, path: String)
    case userNotFound(String, context: String, path: String)
    case unsupportedAuth(user: String, mechanism: String, path: String)
    case credentialUnreadable(what: String, path: String, reason: String)
    case invalidCredential(what: String, reason: String)
    case invalidServerURL(String, source: String)
    case inClusterUnavailable(reason: String)

    // HTTP-level answers
    case unauthorized(server: String, user: String, detail: String)
    case forbidden(server: String, user: String, detail: String)
    case notFound(what: String, namespace: String?)
    case namespaceMissing(String)
    case resourceTypeMissing(apiVersion: String, kind: String, server: String)
    case conflict(what: String, detail: String)
    case invalidObject(what: String, detail: String)
    case apiError(status: Int, method: String, path: String, detail: String)

    // transport
    case cannotConnect(server: String, reason: String)
    case timeout(server: String, seconds: Int, what: String)
    case tls(server: String, reason: String)
    case badResponse(server: String, what: String)

    // deploy flow
    case rolloutTimeout(deployment: String, seconds: Int, last: String)
    case rollbackFailed(deployment: String, toRevision: Int, failure: String)
    case noPreviousRevision(deployment: String, current: Int)
    case revisionNotFound(deployment: String, revision: Int, available: [Int])
    case serverTooOld(version: String, minimum: String)
    /// Preflight found what the apply would need and the cluster lacks; nothing was changed.
    case preflightFailed(server: String, namespace: String, problems: [String])
    /// An admission ResourceQuota refused to create the object.
    case quotaExceeded(what: String, detail: String)
    /// A revision's pod template refers to a ConfigMap that no longer exists.
    case configMapMissing(deployment: String, revision: Int, configMap: String)

    public var description: String {
        switch self {
        case .kubeconfigNotFound(let searched):
            return "no Kubernetes configuration found (looked at \(searched.joined(separator: ", "))); pass --kubeconfig FILE, set KUBECONFIG, or run inside a cluster with a service account"
        case .kubeconfigInvalid(let path, let reason):
            return "\(path): not a valid kubeconfig (\(reason)); check it with 'kubectl config view --kubeconfig \(path)'"
        case .contextNotFound(let name, let available, let path):
            return "\(path): context '\(name)' does not exist; available contexts: \(list(available)); pass --context with one of them"
        case .noCurrentContext(let path, let available):
            return "\(path): no current-context is set; pass --context (available: \(list(available))) or run 'kubectl config use-context NAME'"
        case .clusterNotFound(let name, let context, let path):
            return "\(path): context '\(context)' names cluster '\(name)', which is not in the clusters list; fix the context or add the cluster"
        case .userNotFound(let name, let context, let path):
            return "\(path): context '\(context)' names user '\(name)', which is not in the users list; fix the context or add the user"
        case .unsupportedAuth(let user, let mechanism, let path):
            return "\(path): user '\(user)' authenticates with '\(mechanism)', which autoglm does not run; give the user a token (token/tokenFile) or a client certificate (client-certificate/client-key), e.g. from 'kubectl create token SERVICEACCOUNT'"
        case .credentialUnreadable(let what, let path, let reason) where what == "kubeconfig":
            return "cannot read kubeconfig '\(path)' (\(reason)); check the --kubeconfig path (or $KUBECONFIG)"
        case .credentialUnreadable(let what, let path, let reason):
            return "cannot read \(what) '\(path)' (\(reason)); check that the file exists and is readable, or inline it as \(what)-data"
        case .invalidCredential(let what, let reason):
            return "\(what) is not usable (\(reason)); check that it is PEM (-----BEGIN ...) or base64 of PEM in the *-data fields"
        case .invalidServerURL(let url, let source):
            return "\(source): server '\(url)' is not an https:// or http:// URL; write it as https://HOST:PORT"
        case .inClusterUnavailable(let reason):
            return "in-cluster configuration is not usable (\(reason)); run inside a pod with a mounted service account, or pass --kubeconfig"
        case .unauthorized(let server, let user, let detail):
            return "\(server) rejected the credentials of user '\(user)' (401 Unauthorized\(detail.isEmpty ? "" : ": \(detail)")); check the token or client certificate in your kubeconfig (is it expired or for another cluster?) and try again"
        case .forbidden(let server, let user, let detail):
            return "\(server): user '\(user)' is not allowed to do this (403 Forbidden: \(detail)); ask a cluster admin for a Role/RoleBinding that grants it"
        case .notFound(let what, let namespace):
            return "\(what) not found\(namespace.map { " in namespace '\($0)'" } ?? ""); check the name and --namespace (or deploy it first with 'autoglm deploy apply')"
        case .namespaceMissing(let ns):
            return "namespace '\(ns)' does not exist; create it ('kubectl create namespace \(ns)') or pass --create-namespace"
        case .resourceTypeMissing(let apiVersion, let kind, let server):
            return "\(server) does not serve \(kind) (\(apiVersion)); install the CRD that provides it (e.g. prometheus-operator for ServiceMonitor), disable it in autoglm.yaml, or pass --kube-version matching the server"
        case .conflict(let what, let detail):
            return "\(what): conflict (\(detail)); another client changed it at the same time, run the command again"
        case .invalidObject(let what, let detail):
            return "\(what) was rejected by the API server (422 Invalid: \(detail)); fix the field named above in autoglm.yaml"
        case .apiError(let status, let method, let path, let detail):
            return "\(method) \(path) failed with HTTP \(status)\(detail.isEmpty ? "" : ": \(detail)"); check the API server's health ('kubectl get --raw /readyz') and try again"
        case .cannotConnect(let server, let reason):
            return "cannot connect to the Kubernetes API server at \(server) (\(reason)); check that the cluster is running and that the kubeconfig's server address is right"
        case .timeout(let server, let seconds, let what):
            return "\(what) to \(server) got no answer within \(seconds) s; the API server is unreachable or overloaded, check the network and 'kubectl get --raw /readyz'"
        case .tls(let server, let reason):
            return "TLS with \(server) failed (\(reason)); check certificate-authority / certificate-authority-data in the kubeconfig (it must sign the server's certificate)"
        case .badResponse(let server, let what):
            return "\(server) sent an unexpected response (\(what)); is this really a Kubernetes API server?"
        case .rolloutTimeout(let deployment, let seconds, let last):
            return "deployment/\(deployment) did not finish rolling out within \(seconds) s (last state: \(last)); raise --timeout or check 'autoglm deploy status'"
        case .rollbackFailed(let deployment, let revision, let failure):
            return "rolling deployment/\(deployment) back to the pod template of revision \(revision) failed too: \(failure)\nthat revision is not healthy either; pick another with 'autoglm deploy rollback --to-revision N' (see 'autoglm deploy status' for the history)"
        case .noPreviousRevision(let deployment, let current):
            return "deployment/\(deployment) has no revision before \(current) to go back to; pass --to-revision or apply a fixed spec"
        case .revisionNotFound(let deployment, let revision, let available):
            return "deployment/\(deployment) has no revision \(revision) (kept: \(available.map(String.init).joined(separator: ", "))); pick one of those with --to-revision"
        case .serverTooOld(let version, let minimum):
            return "the API server runs Kubernetes \(version); autoglm deploys to \(minimum) or later, upgrade the cluster"
        case .preflightFailed(let server, let namespace, let problems):
            return "preflight against \(server) (namespace '\(namespace)') failed, nothing was changed:\n"
                + problems.map { "  - " + $0 }.joined(separator: "\n")
        case .quotaExceeded(let what, let detail):
            return "\(what) was refused by a ResourceQuota of the namespace (\(detail)); raise the quota ('kubectl describe resourcequota') or turn the object off in autoglm.yaml"
        case .configMapMissing(let deployment, let revision, let configMap):
            return "revision \(revision) of deployment/\(deployment) uses configmap/\(configMap), which no longer exists; apply that revision's autoglm.yaml again ('autoglm deploy apply') instead of rolling back to it"
        }
    }

    private func list(_ a: [String]) -> String { a.isEmpty ? "(none)" : a.joined(separator: ", ") }
}
