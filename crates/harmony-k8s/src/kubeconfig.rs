//! An existing cluster's kubeconfig, pinned to one context, for both the Kubernetes client and
//! helm's `--kubeconfig`: the two can then never talk to different clusters.
//!
//! The kubeconfig is the one kube-rs reads by default (every file in `KUBECONFIG`, merged by
//! kubectl's rules, else `~/.kube/config`); kube-rs turns the paths it references (certificates,
//! exec plugins) into absolute ones, so the pinned copy works from any directory.

use kube::config::Kubeconfig;
use secrecy::SecretString;

use crate::K8sError;

/// The default kubeconfig with `context` as its current context (see the module docs). The text
/// holds credentials: write it only to a private file.
pub fn default_kubeconfig_for_context(context: &str) -> Result<SecretString, K8sError> {
    let kubeconfig = Kubeconfig::read().map_err(|source| K8sError::KubeconfigRead { source })?;
    pin_context(kubeconfig, context)
}

/// `kubeconfig` with `context` as its current context, as text (JSON, which is YAML too). A
/// context that does not exist is an error naming it and the ones that do.
pub fn pin_context(mut kubeconfig: Kubeconfig, context: &str) -> Result<SecretString, K8sError> {
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        return Err(K8sError::ContextNotFound {
            context: context.to_owned(),
            available: kubeconfig.contexts.iter().map(|c| c.name.clone()).collect(),
        });
    }
    kubeconfig.current_context = Some(context.to_owned());
    let text = serde_json::to_string_pretty(&kubeconfig)
        .map_err(|source| K8sError::KubeconfigWrite { source })?;
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    use harmony_testkit::kubeconfig::TWO_CONTEXTS;

    #[test]
    fn the_named_context_becomes_current_and_the_text_reads_back() {
        let kubeconfig = Kubeconfig::from_yaml(TWO_CONTEXTS).expect("valid");
        let text = pin_context(kubeconfig, "prod").expect("exists");
        let back = Kubeconfig::from_yaml(text.expose_secret()).expect("reads back");
        assert_eq!(back.current_context.as_deref(), Some("prod"));
        assert_eq!(back.clusters.len(), 2);
        assert_eq!(
            back.clusters[1]
                .cluster
                .as_ref()
                .and_then(|c| c.server.as_deref()),
            Some("https://127.0.0.1:2")
        );
    }

    #[test]
    fn an_unknown_context_names_it_and_the_ones_that_exist() {
        let kubeconfig = Kubeconfig::from_yaml(TWO_CONTEXTS).expect("valid");
        let err = pin_context(kubeconfig, "staging").expect_err("absent");
        let text = err.to_string();
        assert!(text.contains("\"staging\""), "{text}");
        assert!(text.contains("dev, prod"), "{text}");
        assert!(!text.contains("not-a-real-token"), "{text}");
    }
}
