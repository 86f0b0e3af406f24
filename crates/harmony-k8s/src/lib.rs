//! Harmony's Kubernetes client: the handful of operations a deployment needs, over kube-rs.
//!
//! Harmony never runs `kubectl`. Everything a score needs from a cluster — waiting for a pod,
//! running a command in it, forwarding a port to it, applying and deleting objects, reading a
//! Secret — is a method on [`K8sClient`], which wraps one [`kube::Client`]. The client is built
//! once (from the kubeconfig that `k3d kubeconfig get` prints, or from the environment) and passed
//! down; nothing rebuilds context strings.
//!
//! Design choices:
//! - **Transport is replaceable.** [`K8sClient::new`] takes any [`kube::Client`], which in turn
//!   takes any tower `Service`: the tests drive every method through `tower_test` mock API
//!   scenarios, the way kube-rs tests itself.
//! - **Waits are watches with an outer bound.** kube's watchers never end by themselves, so every
//!   wait is wrapped in [`tokio::time::timeout`] and remembers the last state it saw: a timeout
//!   says the pod's phase and last condition instead of just "timed out".
//! - **Every single API call has a timeout** ([`REQUEST_TIMEOUT`]), independent of the transport.
//! - **Generic over typed resources.** [`K8sClient::apply`] and [`K8sClient::delete_resource`]
//!   work on any k8s-openapi type, namespaced or cluster-scoped (e.g.
//!   `MutatingWebhookConfiguration`), building the URL from the type's own scope.
//! - **No secrets in logs or errors.** Exec errors carry the program name only (arguments can hold
//!   tokens), [`ExecOutput`]'s `Debug` shows byte counts rather than output, and Secret values
//!   come back as [`secrecy::SecretString`].
//!
//! Long operations run inside `tracing` spans, which the CLI turns into spinners.
//!
//! Testing: waits, apply, delete, Secret reads, namespace creation and CRD checks are driven
//! through `tower_test` mock API scenarios (`tests/mock_api.rs`); exec status parsing and the
//! port-forward accept/copy loop are unit-tested with in-memory streams. The websocket upgrade
//! behind exec and port-forward runs only in the `#[ignore = "needs Docker + k3d"]` live tests
//! (`tests/live.rs`). `tests/no_kubectl.rs` fails if any `.rs` file in the workspace runs kubectl.
//!
//! ```no_run
//! # async fn demo(kubeconfig_yaml: &str) -> Result<(), harmony_k8s::K8sError> {
//! use std::time::Duration;
//! use harmony_k8s::K8sClient;
//!
//! let k8s = K8sClient::from_kubeconfig_yaml(kubeconfig_yaml, Some("k3d-harmony")).await?;
//! k8s.wait_for_pod_running("openbao", "openbao-0", Duration::from_secs(300)).await?;
//! let forward = k8s.port_forward("openbao", "openbao-0", 8200).await?;
//! println!("OpenBao at {}", forward.local_url());
//! # Ok(())
//! # }
//! ```

mod error;
mod exec;
mod kubeconfig;
mod port_forward;
mod proxy;
mod wait;

pub use proxy::ProxyPolicy;

use std::{any::TypeId, fmt::Debug, future::Future, time::Duration};

use k8s_openapi::{
    ClusterResourceScope,
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Resource,
    api::{DeleteParams, GetParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use secrecy::SecretString;
use serde::{Serialize, de::DeserializeOwned};
use tracing::Instrument;
use zeroize::Zeroize;

pub use error::K8sError;
pub use exec::{EXEC_TIMEOUT, ExecOutput, ExecStatus, parse_exec_status};
pub use kubeconfig::{default_kubeconfig_for_context, pin_context};
pub use port_forward::{PortForward, UPSTREAM_CONNECT_TIMEOUT};

/// Bound on every single (non-watch) API call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The field manager Harmony's server-side applies use.
pub const FIELD_MANAGER: &str = "harmony";

/// A Kubernetes client with the operations Harmony's scores need.
///
/// Cheap to clone (the inner [`kube::Client`] is reference counted).
#[derive(Clone)]
pub struct K8sClient {
    client: kube::Client,
}

impl std::fmt::Debug for K8sClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sClient")
            .field("default_namespace", &self.client.default_namespace())
            .finish_non_exhaustive()
    }
}

impl K8sClient {
    /// Wraps an existing kube client (in tests, one over a `tower_test` mock service).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// Builds a client from kubeconfig text (e.g. the output of `k3d kubeconfig get NAME`).
    ///
    /// `context` picks a context; `None` uses the kubeconfig's `current-context`. The API
    /// server is reached directly unless the kubeconfig itself names a `proxy-url`: the
    /// environment's `HTTPS_PROXY` (which helm needs for chart downloads) never applies to it
    /// ([`ProxyPolicy::KubeconfigOnly`], see `proxy.rs`).
    pub async fn from_kubeconfig_yaml(yaml: &str, context: Option<&str>) -> Result<Self, K8sError> {
        Self::from_kubeconfig_yaml_with(yaml, context, ProxyPolicy::KubeconfigOnly).await
    }

    /// [`Self::from_kubeconfig_yaml`] with an explicit proxy policy
    /// ([`ProxyPolicy::KubeconfigThenEnvironment`] for an existing cluster behind a proxy).
    pub async fn from_kubeconfig_yaml_with(
        yaml: &str,
        context: Option<&str>,
        policy: ProxyPolicy,
    ) -> Result<Self, K8sError> {
        let kubeconfig =
            Kubeconfig::from_yaml(yaml).map_err(|source| K8sError::KubeconfigParse { source })?;
        let own_proxy = proxy::kubeconfig_proxy(&kubeconfig, context);
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| K8sError::KubeconfigContext {
                context: context.map(str::to_owned),
                source,
            })?;
        let host = config.cluster_url.host().unwrap_or_default().to_owned();
        let chosen = proxy::choose_proxy(policy, own_proxy, &host, |n| std::env::var(n).ok());
        // kube took the environment's proxy whenever the kubeconfig had none; replace its
        // choice with ours (same precedence, NO_PROXY matched against the API server).
        config.proxy_url = match chosen {
            None => None,
            Some(p) => Some(p.parse().map_err(|_| K8sError::ProxyUrl)?),
        };
        Self::from_config(config)
    }

    /// Builds a client the way kube does by default: `KUBECONFIG` / `~/.kube/config` with its
    /// current context, else the in-cluster service account. The proxy follows
    /// [`ProxyPolicy::KubeconfigThenEnvironment`]: the kubeconfig's `proxy-url`, else
    /// `HTTPS_PROXY` unless `NO_PROXY` covers the API server's host.
    pub async fn try_default() -> Result<Self, K8sError> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|source| K8sError::InferConfig {
                source: kube::Error::InferConfig(source),
            })?;
        let own_proxy = Kubeconfig::read()
            .ok()
            .and_then(|k| proxy::kubeconfig_proxy(&k, None));
        let host = config.cluster_url.host().unwrap_or_default().to_owned();
        let chosen = proxy::choose_proxy(
            ProxyPolicy::KubeconfigThenEnvironment,
            own_proxy,
            &host,
            |n| std::env::var(n).ok(),
        );
        config.proxy_url = match chosen {
            None => None,
            Some(p) => Some(p.parse().map_err(|_| K8sError::ProxyUrl)?),
        };
        Self::from_config(config)
    }

    fn from_config(config: kube::Config) -> Result<Self, K8sError> {
        let cluster_url = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|source| K8sError::ClientBuild {
            cluster_url,
            source,
        })?;
        Ok(Self::new(client))
    }

    /// The underlying kube client, for operations this type does not wrap.
    pub fn kube(&self) -> &kube::Client {
        &self.client
    }

    /// Server-side applies `obj` with field manager [`FIELD_MANAGER`] and `force`, returning the
    /// object as the API server stored it.
    ///
    /// The namespace of a namespaced kind is `namespace`, else the object's own
    /// `metadata.namespace`, else the client's default namespace. A namespace given for a
    /// cluster-scoped kind is an error.
    pub async fn apply<K>(&self, obj: &K, namespace: Option<&str>) -> Result<K, K8sError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
        K::Scope: 'static,
    {
        let kind = K::kind(&()).into_owned();
        let name = obj
            .meta()
            .name
            .clone()
            .ok_or_else(|| K8sError::MissingName { kind: kind.clone() })?;
        let ns =
            self.resolve_namespace::<K>(&name, namespace.or(obj.meta().namespace.as_deref()))?;
        let resource = describe::<K>(&name, ns.as_deref());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let request = kube::core::Request::new(K::url_path(&(), ns.as_deref()))
            .patch(&name, &params, &Patch::Apply(obj))
            .map_err(|source| K8sError::RequestBuild {
                operation: "apply",
                resource: resource.clone(),
                source,
            })?;
        let span = tracing::info_span!("k8s.apply", resource = %resource);
        let applied: K = with_timeout("apply", &resource, self.client.request(request))
            .instrument(span)
            .await?;
        tracing::debug!(%resource, "applied");
        Ok(applied)
    }

    /// Deletes a typed resource; a resource that does not exist counts as deleted.
    ///
    /// `namespace` is required semantics-wise for namespaced kinds (`None` means the client's
    /// default namespace) and must be `None` for cluster-scoped kinds such as
    /// `MutatingWebhookConfiguration` or `Namespace`.
    pub async fn delete_resource<K>(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<(), K8sError>
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        let ns = self.resolve_namespace::<K>(name, namespace)?;
        let resource = describe::<K>(name, ns.as_deref());
        let request = kube::core::Request::new(K::url_path(&(), ns.as_deref()))
            .delete(name, &DeleteParams::default())
            .map_err(|source| K8sError::RequestBuild {
                operation: "delete",
                resource: resource.clone(),
                source,
            })?;
        let span = tracing::info_span!("k8s.delete", resource = %resource);
        // The body is the deleted object or a Status; either way the delete was accepted, and
        // parsing it as `K` would fail for kinds that answer with a Status.
        match with_timeout("delete", &resource, self.client.request_text(request))
            .instrument(span)
            .await
        {
            Ok(_) => {
                tracing::debug!(%resource, "deleted");
                Ok(())
            }
            Err(err) if err.is_not_found() => {
                tracing::debug!(%resource, "already absent");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Reads one key of a Secret as text. `Ok(None)` when the Secret or the key does not exist
    /// (yet), so callers can poll for Secrets another controller creates.
    pub async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<SecretString>, K8sError> {
        let resource = describe::<Secret>(name, Some(namespace));
        let request = kube::core::Request::new(Secret::url_path(&(), Some(namespace)))
            .get(name, &GetParams::default())
            .map_err(|source| K8sError::RequestBuild {
                operation: "get",
                resource: resource.clone(),
                source,
            })?;
        // `request_text` + our own parse rather than `Api::get`: kube logs the whole body at
        // warn level when a typed parse fails, and this body holds secret values.
        let mut text = match with_timeout("get", &resource, self.client.request_text(request)).await
        {
            Ok(text) => text,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err),
        };
        let parsed = serde_json::from_str::<Secret>(&text);
        text.zeroize();
        let secret = parsed.map_err(|e| K8sError::Api {
            operation: "get",
            resource: resource.clone(),
            source: kube::Error::SerdeError(redacted_serde_error(&e)),
        })?;
        let mut data = secret.data.unwrap_or_default();
        let value = data.remove(key);
        for other in data.values_mut() {
            other.0.zeroize();
        }
        tracing::debug!(secret = %resource, key, found = value.is_some(), "read Secret key");
        let Some(value) = value else {
            return Ok(None);
        };
        match String::from_utf8(value.0) {
            Ok(text) => Ok(Some(SecretString::from(text))),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(K8sError::SecretNotUtf8 {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    key: key.to_owned(),
                })
            }
        }
    }

    /// Creates a namespace unless it already exists.
    pub async fn ensure_namespace(&self, name: &str) -> Result<(), K8sError> {
        let resource = describe::<Namespace>(name, None);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let body = serde_json::to_vec(&namespace).map_err(|e| K8sError::Api {
            operation: "create",
            resource: resource.clone(),
            source: kube::Error::SerdeError(e),
        })?;
        let request = kube::core::Request::new(Namespace::url_path(&(), None))
            .create(&PostParams::default(), body)
            .map_err(|source| K8sError::RequestBuild {
                operation: "create",
                resource: resource.clone(),
                source,
            })?;
        let span = tracing::info_span!("k8s.ensure_namespace", namespace = name);
        match with_timeout("create", &resource, self.client.request_text(request))
            .instrument(span)
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = name, "namespace created");
                Ok(())
            }
            Err(K8sError::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.is_already_exists() || status.code == 409 => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Whether the CustomResourceDefinition `name` (e.g. `clusters.postgresql.cnpg.io`) exists
    /// and has condition `Established=True`. A missing CRD is `Ok(false)`.
    ///
    /// Note that kube clients cache nothing about CRDs, but the API server's discovery may lag a
    /// little behind `Established`; retry the first create of a custom resource.
    pub async fn crd_established(&self, name: &str) -> Result<bool, K8sError> {
        let resource = describe::<CustomResourceDefinition>(name, None);
        let request = kube::core::Request::new(CustomResourceDefinition::url_path(&(), None))
            .get(name, &GetParams::default())
            .map_err(|source| K8sError::RequestBuild {
                operation: "get",
                resource: resource.clone(),
                source,
            })?;
        match with_timeout(
            "get",
            &resource,
            self.client.request::<CustomResourceDefinition>(request),
        )
        .await
        {
            Ok(crd) => Ok(wait::crd_is_established(&crd)),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The namespace a request for kind `K` goes to, checked against `K`'s scope.
    fn resolve_namespace<K>(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Option<String>, K8sError>
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        if is_cluster_scoped::<K>() {
            match namespace {
                Some(ns) => Err(K8sError::ClusterScopedWithNamespace {
                    kind: K::kind(&()).into_owned(),
                    name: name.to_owned(),
                    namespace: ns.to_owned(),
                }),
                None => Ok(None),
            }
        } else {
            Ok(Some(
                namespace
                    .unwrap_or_else(|| self.client.default_namespace())
                    .to_owned(),
            ))
        }
    }
}

fn is_cluster_scoped<K>() -> bool
where
    K: Resource,
    K::Scope: 'static,
{
    TypeId::of::<K::Scope>() == TypeId::of::<ClusterResourceScope>()
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects: how errors and spans name
/// a resource.
fn describe<K: Resource<DynamicType = ()>>(name: &str, namespace: Option<&str>) -> String {
    let kind = K::kind(&());
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// A serde error without the input excerpt serde_json may not carry anyway — rebuilt from its
/// category and position only, so no Secret bytes can reach an error message.
fn redacted_serde_error(err: &serde_json::Error) -> serde_json::Error {
    use serde::de::Error as _;
    serde_json::Error::custom(format!(
        "invalid {:?} JSON at line {} column {}",
        err.classify(),
        err.line(),
        err.column()
    ))
}

/// Runs one API call under [`REQUEST_TIMEOUT`], mapping both failure kinds to [`K8sError`].
async fn with_timeout<T>(
    operation: &'static str,
    resource: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, K8sError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(K8sError::Api {
            operation,
            resource: resource.to_owned(),
            source,
        }),
        Err(_) => Err(K8sError::RequestTimeout {
            operation,
            resource: resource.to_owned(),
            timeout: REQUEST_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{
        admissionregistration::v1::MutatingWebhookConfiguration, core::v1::Pod,
    };

    fn kubeconfig(token: &str) -> String {
        format!(
            r#"apiVersion: v1
kind: Config
current-context: k3d-one
clusters:
- name: k3d-one
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
contexts:
- name: k3d-one
  context: {{cluster: k3d-one, user: admin@k3d-one, namespace: team}}
- name: k3d-two
  context: {{cluster: k3d-one, user: admin@k3d-one}}
users:
- name: admin@k3d-one
  user:
    token: {token}
"#
        )
    }

    #[tokio::test]
    async fn kubeconfig_text_selects_the_context_without_leaking_credentials() {
        let yaml = kubeconfig("tok-s3cr3t");
        let current = K8sClient::from_kubeconfig_yaml(&yaml, None)
            .await
            .expect("current context loads");
        assert_eq!(current.kube().default_namespace(), "team");
        let two = K8sClient::from_kubeconfig_yaml(&yaml, Some("k3d-two"))
            .await
            .expect("named context loads");
        assert_eq!(two.kube().default_namespace(), "default");
        assert!(!format!("{two:?}").contains("s3cr3t"));

        let err = K8sClient::from_kubeconfig_yaml(&yaml, Some("k3d-missing"))
            .await
            .expect_err("unknown context");
        assert!(matches!(err, K8sError::KubeconfigContext { .. }), "{err:?}");
        assert!(err.to_string().contains("k3d-missing"), "{err}");

        let err = K8sClient::from_kubeconfig_yaml("clusters: [oops", None)
            .await
            .expect_err("not YAML");
        assert!(matches!(err, K8sError::KubeconfigParse { .. }), "{err:?}");
    }

    #[test]
    fn scope_is_read_from_the_type() {
        assert!(is_cluster_scoped::<MutatingWebhookConfiguration>());
        assert!(is_cluster_scoped::<Namespace>());
        assert!(!is_cluster_scoped::<Pod>());
        assert!(!is_cluster_scoped::<Secret>());
    }

    #[test]
    fn resources_are_described_with_kind_and_namespace() {
        assert_eq!(describe::<Pod>("p", Some("ns")), "Pod ns/p");
        assert_eq!(
            describe::<MutatingWebhookConfiguration>("w", None),
            "MutatingWebhookConfiguration w"
        );
    }
}
