//! Errors from [`crate::K8sClient`].
//!
//! One variant per cause. Each carries the resource it was about (`namespace/name`, the pod, the
//! port) and keeps the underlying kube error as `#[source]`, so the CLI can print the whole chain.
//! Nothing here ever carries a secret: exec errors name only the program, never its arguments
//! (arguments may hold tokens), and Secret values are never part of an error.

use std::{net::SocketAddr, time::Duration};

/// Everything that can go wrong talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// The kubeconfig text is not valid YAML or not a kubeconfig.
    #[error("the kubeconfig is not valid; check the output of `k3d kubeconfig get <cluster>`")]
    KubeconfigParse {
        /// Why it could not be parsed.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The kubeconfig parsed but the requested context could not be turned into a client config.
    #[error(
        "cannot use kubeconfig context {}; check that the context exists and names a cluster and user",
        context.as_deref().unwrap_or("(current-context)")
    )]
    KubeconfigContext {
        /// The context asked for; `None` means the kubeconfig's current context.
        context: Option<String>,
        /// Why the context could not be loaded.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The default kubeconfig (`KUBECONFIG`, else `~/.kube/config`) could not be read.
    #[error(
        "cannot read the kubeconfig (the files in KUBECONFIG, else ~/.kube/config); check that \
         it exists and is valid (`kubectl config view`)"
    )]
    KubeconfigRead {
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The kubeconfig has no context of that name.
    #[error(
        "the kubeconfig has no context {context:?} (it has: {}); `kubectl config get-contexts` \
         lists them",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") }
    )]
    ContextNotFound {
        /// The context asked for.
        context: String,
        /// The contexts that exist.
        available: Vec<String>,
    },

    /// The pinned kubeconfig could not be written out as text.
    #[error("cannot write the kubeconfig out for helm")]
    KubeconfigWrite {
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// No kubeconfig or in-cluster configuration could be found.
    #[error("no Kubernetes configuration found; set KUBECONFIG or create a cluster first")]
    InferConfig {
        /// Why inference failed.
        #[source]
        source: kube::Error,
    },

    /// The HTTP client for the cluster could not be built (TLS material, proxy, ...).
    #[error(
        "cannot build a Kubernetes client for {cluster_url}; check the kubeconfig's \
         certificates and proxy-url (Harmony builds kube without its proxy features: the API \
         server must be reachable without a proxy)"
    )]
    ClientBuild {
        /// The API server URL from the config.
        cluster_url: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },

    /// The proxy URL chosen for the API server (the kubeconfig's `proxy-url` or `HTTPS_PROXY`)
    /// is not a URL. The value is not shown: proxy URLs can carry a password.
    #[error(
        "the proxy URL for the Kubernetes API (the kubeconfig's proxy-url, else HTTPS_PROXY) is \
         not a valid URL; fix it, or add the API server's host to NO_PROXY"
    )]
    ProxyUrl,

    /// An API request (`operation` on `resource`) failed.
    #[error(
        "Kubernetes API call failed: {operation} {resource}; is the cluster reachable and the resource valid?"
    )]
    Api {
        /// What was attempted (`get`, `delete`, `apply`, `create`, ...).
        operation: &'static str,
        /// `kind namespace/name` or `kind name` for cluster-scoped resources.
        resource: String,
        /// The kube error (an API `Status`, a transport error, ...).
        #[source]
        source: kube::Error,
    },

    /// The request could not even be built (e.g. an object without a name).
    #[error("cannot build the {operation} request for {resource}")]
    RequestBuild {
        /// What was attempted.
        operation: &'static str,
        /// The resource.
        resource: String,
        /// The builder's error.
        #[source]
        source: kube::core::request::Error,
    },

    /// An object to apply has no `metadata.name`.
    #[error("cannot apply a {kind} without metadata.name; set a name on the object")]
    MissingName {
        /// The kind of the object.
        kind: String,
    },

    /// A single API call did not answer in time.
    #[error(
        "Kubernetes API call {operation} {resource} did not answer within {timeout:?}; is the cluster up?"
    )]
    RequestTimeout {
        /// What was attempted.
        operation: &'static str,
        /// The resource.
        resource: String,
        /// The bound that was exceeded.
        timeout: Duration,
    },

    /// A namespace was given for a cluster-scoped kind.
    #[error(
        "{kind} {name} is cluster-scoped but namespace {namespace} was given; pass no namespace"
    )]
    ClusterScopedWithNamespace {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The namespace that should not have been given.
        namespace: String,
    },

    /// A wait did not see its condition within the timeout.
    #[error("timed out after {timeout:?} waiting for {waiting_for}; last seen: {last_seen}")]
    WaitTimeout {
        /// What was awaited, e.g. `pod openbao/openbao-0 to be Ready`.
        waiting_for: String,
        /// The bound that was exceeded.
        timeout: Duration,
        /// The last observed state: phase, last condition, or the last watch error.
        last_seen: String,
    },

    /// A watch failed in a way that waiting longer cannot fix (e.g. RBAC forbids it).
    #[error("cannot watch {resource}; check the credentials' permissions (list/watch)")]
    Watch {
        /// The watched resource.
        resource: String,
        /// The watcher's error.
        #[source]
        source: kube::runtime::watcher::Error,
    },

    /// The exec could not be started (pod missing, container wrong, upgrade refused, ...).
    #[error(
        "cannot exec `{program}` in pod {pod}; is the pod Running and the container name right?"
    )]
    ExecStart {
        /// `namespace/pod`.
        pod: String,
        /// `argv[0]` only: arguments may hold secrets.
        program: String,
        /// The kube error.
        #[source]
        source: kube::Error,
    },

    /// Reading the exec output streams failed.
    #[error("reading the output of `{program}` in pod {pod} failed")]
    ExecStream {
        /// `namespace/pod`.
        pod: String,
        /// `argv[0]` only.
        program: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An exec did not finish in time.
    #[error("`{program}` in pod {pod} did not finish within {timeout:?}")]
    ExecTimeout {
        /// `namespace/pod`.
        pod: String,
        /// `argv[0]` only.
        program: String,
        /// The bound that was exceeded.
        timeout: Duration,
    },

    /// An exec ran but failed (see [`crate::ExecOutput::into_success`]).
    #[error(
        "`{program}` in pod {pod} failed{}: {message}",
        code.map(|c| format!(" with exit code {c}")).unwrap_or_default()
    )]
    ExecFailed {
        /// `namespace/pod`.
        pod: String,
        /// `argv[0]` only.
        program: String,
        /// The exit code, when the API server reported one.
        code: Option<i32>,
        /// The API server's message.
        message: String,
    },

    /// Exec was called with an empty command.
    #[error("exec in pod {pod} needs a command; got an empty argument list")]
    EmptyCommand {
        /// `namespace/pod`.
        pod: String,
    },

    /// The local port-forward listener could not be bound.
    #[error("cannot listen on {addr} for the port-forward to {target}")]
    PortForwardBind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// `namespace/pod:port`.
        target: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Opening the port-forward stream to the pod failed.
    #[error(
        "cannot open a port-forward to {target}; is the pod Running and listening on that port?"
    )]
    PortForwardConnect {
        /// `namespace/pod:port`.
        target: String,
        /// The kube error.
        #[source]
        source: kube::Error,
    },

    /// The API server accepted the port-forward but gave no stream for the port.
    #[error("the port-forward to {target} returned no stream for the port")]
    PortForwardNoStream {
        /// `namespace/pod:port`.
        target: String,
    },

    /// A Secret key holds bytes that are not UTF-8 text.
    #[error("key {key} of Secret {namespace}/{name} is not UTF-8 text")]
    SecretNotUtf8 {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
}

impl K8sError {
    /// Whether this is an API error whose status is 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, K8sError::Api { source: kube::Error::Api(status), .. } if status.is_not_found())
    }
}
