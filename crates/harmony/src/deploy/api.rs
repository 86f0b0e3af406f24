//! Typed reads of the Kubernetes API that `harmony-k8s` has no operation for (a CNPG
//! `Cluster`'s status, the nodes, a StatefulSet and its pods), each under the client's
//! per-call bound ([`harmony_k8s::REQUEST_TIMEOUT`]) and mapped to [`K8sError`] like its own
//! calls.

use std::fmt::Debug;

use harmony_k8s::{K8sClient, K8sError, REQUEST_TIMEOUT};
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

async fn bounded<T>(
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

/// One namespaced object; `Ok(None)` when it does not exist.
pub(crate) async fn get_namespaced<K>(
    k8s: &K8sClient,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, K8sError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(k8s.kube().clone(), namespace);
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    bounded(
        "get",
        &format!("{kind} {namespace}/{name}"),
        api.get_opt(name),
    )
    .await
}

/// Every object of a cluster-scoped kind (`what` names them in errors).
pub(crate) async fn list_cluster<K>(k8s: &K8sClient, what: &str) -> Result<Vec<K>, K8sError>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(k8s.kube().clone());
    Ok(bounded("list", what, api.list(&ListParams::default()))
        .await?
        .items)
}
/// The objects of a namespaced kind matching `labels` (a label selector).
pub(crate) async fn list_namespaced<K>(
    k8s: &K8sClient,
    namespace: &str,
    labels: &str,
) -> Result<Vec<K>, K8sError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(k8s.kube().clone(), namespace);
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    Ok(bounded(
        "list",
        &format!("{kind} in {namespace} ({labels})"),
        api.list(&ListParams::default().labels(labels)),
    )
    .await?
    .items)
}

/// Deletes one namespaced object but leaves its dependents (`propagationPolicy: Orphan`): a
/// StatefulSet's pods keep running and are adopted by the one created next with the same
/// selector. An object that does not exist counts as deleted.
pub(crate) async fn delete_orphaning<K>(
    k8s: &K8sClient,
    namespace: &str,
    name: &str,
) -> Result<(), K8sError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(k8s.kube().clone(), namespace);
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    match bounded(
        "delete",
        &format!("{kind} {namespace}/{name}"),
        api.delete(name, &kube::api::DeleteParams::orphan()),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(K8sError::Api {
            source: kube::Error::Api(status),
            ..
        }) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
