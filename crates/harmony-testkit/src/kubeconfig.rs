//! Kubeconfig text for tests of the existing-cluster path.

/// Two contexts, `dev` (current) and `prod`, whose API servers do not answer (loopback ports 1
/// and 2), with a made-up bearer token tests can check never leaks.
pub const TWO_CONTEXTS: &str = r#"apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:1"}
- name: prod
  cluster: {server: "https://127.0.0.1:2"}
users:
- name: me
  user: {token: not-a-real-token}
contexts:
- name: dev
  context: {cluster: dev, user: me}
- name: prod
  context: {cluster: prod, user: me}
"#;
