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

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde_json::{Value, json};
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
    pub fn coredns_restart_patch(&self) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": COREDNS_DEPLOYMENT, "namespace": COREDNS_NAMESPACE },
            "spec": { "template": { "metadata": { "annotations": {
                OVERRIDE_HASH_ANNOTATION: self.override_hash()
            } } } }
        })
    }
}
