//! One issuer URL inside and outside the cluster (phase B.6).
//!
//! Zitadel picks its instance from the `Host` header, so in-cluster clients (OpenBao fetching
//! discovery and JWKS) must call it by its external name, `sso.harmony.local`. k3s's CoreDNS
//! imports every `*.override` key of the optional `kube-system/coredns-custom` ConfigMap into its
//! main server block; a `rewrite name` there answers `sso.harmony.local` with the address of
//! Zitadel's Service. With `ExternalPort` equal to the Service port (8080) and k3d mapping host
//! port 8080 to the load balancer, `http://sso.harmony.local:8080` is the issuer everywhere.
//!
//! Design choices:
//! - **Only our key.** The ConfigMap is applied server-side with Harmony's field manager and one
//!   key ([`OVERRIDE_KEY`]), so keys other tools put there are left alone.
//! - **Restart only on change.** CoreDNS's `reload` plugin watches the Corefile, not imported
//!   files, so a new override needs new CoreDNS pods. The CoreDNS Deployment's pod template gets an
//!   annotation holding the override's SHA-256: applying the same override again changes nothing,
//!   a different one rolls CoreDNS.

use std::{borrow::Cow, collections::BTreeMap};

use harmony_k8s::{K8sClient, K8sError};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Namespace of CoreDNS in k3s.
pub const COREDNS_NAMESPACE: &str = "kube-system";
/// The ConfigMap k3s's CoreDNS imports overrides from.
pub const COREDNS_CUSTOM_CONFIGMAP: &str = "coredns-custom";
/// Harmony's key in it (k3s imports keys ending in `.override`).
pub const OVERRIDE_KEY: &str = "harmony-sso.override";
/// The CoreDNS Deployment in k3s.
pub const COREDNS_DEPLOYMENT: &str = "coredns";
/// Pod-template annotation that carries the override's hash (changing it rolls CoreDNS).
pub const OVERRIDE_HASH_ANNOTATION: &str = "harmony.io/coredns-override-sha256";

/// The CoreDNS rewrite that makes `external_domain` resolve to `service_fqdn` in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorednsRewrite {
    /// The name clients use, e.g. `sso.harmony.local`.
    pub external_domain: String,
    /// The Service it should resolve to, e.g. `zitadel.zitadel.svc.cluster.local`.
    pub service_fqdn: String,
}

impl CorednsRewrite {
    /// The override file's content.
    pub fn override_text(&self) -> String {
        format!(
            "rewrite name {} {}\n",
            self.external_domain, self.service_fqdn
        )
    }

    /// Hex SHA-256 of [`Self::override_text`].
    pub fn override_hash(&self) -> String {
        hex::encode(Sha256::digest(self.override_text().as_bytes()))
    }

    /// The `kube-system/coredns-custom` ConfigMap holding only Harmony's key.
    pub fn configmap(&self) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(COREDNS_CUSTOM_CONFIGMAP.into()),
                namespace: Some(COREDNS_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                OVERRIDE_KEY.to_owned(),
                self.override_text(),
            )])),
            ..ConfigMap::default()
        }
    }

    /// The partial CoreDNS Deployment applied server-side to restart CoreDNS when the override
    /// changed: only the pod-template annotation, nothing Harmony does not own.
    pub fn coredns_restart(&self) -> CorednsRestart {
        CorednsRestart {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            metadata: ObjectMeta {
                name: Some(COREDNS_DEPLOYMENT.into()),
                namespace: Some(COREDNS_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            spec: RestartSpec {
                template: RestartTemplate {
                    metadata: RestartMeta {
                        annotations: BTreeMap::from([(
                            OVERRIDE_HASH_ANNOTATION.to_owned(),
                            self.override_hash(),
                        )]),
                    },
                },
            },
        }
    }
}

/// A partial `apps/v1` Deployment carrying only a pod-template annotation.
///
/// Applied server-side, it claims that one annotation and nothing else: a typed k8s-openapi
/// `Deployment` would serialise an empty (atomic, immutable) `selector` and be refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorednsRestart {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Name and namespace of CoreDNS's Deployment.
    pub metadata: ObjectMeta,
    /// Only `template.metadata.annotations`.
    #[serde(default)]
    pub spec: RestartSpec,
}

/// `spec` of [`CorednsRestart`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartSpec {
    /// The pod template.
    pub template: RestartTemplate,
}

/// `spec.template` of [`CorednsRestart`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartTemplate {
    /// Its metadata.
    pub metadata: RestartMeta,
}

/// `spec.template.metadata` of [`CorednsRestart`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartMeta {
    /// Pod annotations ([`OVERRIDE_HASH_ANNOTATION`]).
    pub annotations: BTreeMap<String, String>,
}

impl kube::Resource for CorednsRestart {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Deployment".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "apps".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "deployments".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Why the in-cluster issuer could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// Applying the ConfigMap failed.
    #[error(
        "cannot apply the CoreDNS override {COREDNS_NAMESPACE}/{COREDNS_CUSTOM_CONFIGMAP}; \
         is this a k3s/k3d cluster (other distributions do not import coredns-custom)?"
    )]
    ConfigMap(#[source] K8sError),
    /// Restarting CoreDNS failed.
    #[error(
        "cannot restart CoreDNS (Deployment {COREDNS_NAMESPACE}/{COREDNS_DEPLOYMENT}) to load \
         the override; restart it by hand or re-run"
    )]
    Restart(#[source] K8sError),
}

/// Makes `rewrite.external_domain` resolve to Zitadel inside the cluster: applies the override
/// and rolls CoreDNS only when the override's content changed (see the module docs).
pub async fn apply_in_cluster_issuer(
    k8s: &K8sClient,
    rewrite: &CorednsRewrite,
) -> Result<(), IssuerError> {
    k8s.apply(&rewrite.configmap(), Some(COREDNS_NAMESPACE))
        .await
        .map_err(IssuerError::ConfigMap)?;
    k8s.apply(&rewrite.coredns_restart(), Some(COREDNS_NAMESPACE))
        .await
        .map_err(IssuerError::Restart)?;
    tracing::info!(
        domain = %rewrite.external_domain,
        target = %rewrite.service_fqdn,
        "in-cluster issuer: CoreDNS rewrite applied"
    );
    Ok(())
}
