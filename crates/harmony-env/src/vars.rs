//! Every environment variable Harmony reads.
//!
//! Where several names are accepted for one setting (OpenBao's own CLI and Vault's), the
//! `*_ALIASES` arrays list them in the order they are consulted: the first one set wins.

/// Overrides the directory for local state (see [`crate::harmony_data_dir`]).
pub const HARMONY_DATA_DIR: &str = "HARMONY_DATA_DIR";

/// OpenBao's base URL, e.g. `http://127.0.0.1:8200`.
pub const OPENBAO_URL: &str = "OPENBAO_URL";
/// Names accepted for the OpenBao URL, first set wins.
pub const OPENBAO_URL_ALIASES: [&str; 3] = [OPENBAO_URL, "BAO_ADDR", "VAULT_ADDR"];

/// An explicit OpenBao token: used as is, first in the auth chain.
pub const OPENBAO_TOKEN: &str = "OPENBAO_TOKEN";
/// Names accepted for the OpenBao token, first set wins.
pub const OPENBAO_TOKEN_ALIASES: [&str; 3] = [OPENBAO_TOKEN, "BAO_TOKEN", "VAULT_TOKEN"];

/// The OpenBao namespace every request is sent to (header `X-Vault-Namespace`), e.g. `team-a`.
pub const BAO_NAMESPACE: &str = "BAO_NAMESPACE";
/// Names accepted for the OpenBao namespace, first set wins.
pub const OPENBAO_NAMESPACE_ALIASES: [&str; 2] = [BAO_NAMESPACE, "VAULT_NAMESPACE"];

/// A PEM file of the CA certificate(s) that signed OpenBao's TLS certificate (replaces the
/// system roots for OpenBao).
pub const BAO_CACERT: &str = "BAO_CACERT";
/// Names accepted for OpenBao's CA file, first set wins.
pub const OPENBAO_CACERT_ALIASES: [&str; 2] = [BAO_CACERT, "VAULT_CACERT"];
/// A directory of PEM CA certificates for OpenBao's TLS.
pub const BAO_CAPATH: &str = "BAO_CAPATH";
/// Names accepted for OpenBao's CA directory, first set wins.
pub const OPENBAO_CAPATH_ALIASES: [&str; 2] = [BAO_CAPATH, "VAULT_CAPATH"];
/// A PEM client certificate presented to OpenBao (with [`BAO_CLIENT_KEY`]).
pub const BAO_CLIENT_CERT: &str = "BAO_CLIENT_CERT";
/// Names accepted for the client certificate, first set wins.
pub const OPENBAO_CLIENT_CERT_ALIASES: [&str; 2] = [BAO_CLIENT_CERT, "VAULT_CLIENT_CERT"];
/// The PEM private key of [`BAO_CLIENT_CERT`].
pub const BAO_CLIENT_KEY: &str = "BAO_CLIENT_KEY";
/// Names accepted for the client key, first set wins.
pub const OPENBAO_CLIENT_KEY_ALIASES: [&str; 2] = [BAO_CLIENT_KEY, "VAULT_CLIENT_KEY"];
/// The name OpenBao's certificate is checked against when it is not the URL's host.
pub const BAO_TLS_SERVER_NAME: &str = "BAO_TLS_SERVER_NAME";
/// Names accepted for the TLS server name, first set wins.
pub const OPENBAO_TLS_SERVER_NAME_ALIASES: [&str; 2] =
    [BAO_TLS_SERVER_NAME, "VAULT_TLS_SERVER_NAME"];
/// `true` turns off OpenBao certificate verification (warned about on every run).
pub const BAO_SKIP_VERIFY: &str = "BAO_SKIP_VERIFY";
/// Names accepted for skipping verification, first set wins.
pub const OPENBAO_SKIP_VERIFY_ALIASES: [&str; 2] = [BAO_SKIP_VERIFY, "VAULT_SKIP_VERIFY"];

/// Username for OpenBao's userpass auth method.
pub const OPENBAO_USERNAME: &str = "OPENBAO_USERNAME";
/// Password for OpenBao's userpass auth method.
pub const OPENBAO_PASSWORD: &str = "OPENBAO_PASSWORD";
/// Mount of the userpass auth method (default `userpass`).
pub const OPENBAO_USERPASS_MOUNT: &str = "OPENBAO_USERPASS_MOUNT";

/// KV v2 mount holding Harmony's documents (default `secret`).
pub const OPENBAO_KV_MOUNT: &str = "OPENBAO_KV_MOUNT";
/// Path prefix inside the KV mount (default `harmony`).
pub const OPENBAO_KV_PREFIX: &str = "OPENBAO_KV_PREFIX";

/// Mount of OpenBao's JWT auth method used for the SSO exchange (default `jwt`).
pub const OPENBAO_JWT_AUTH_MOUNT: &str = "OPENBAO_JWT_AUTH_MOUNT";
/// Role at the JWT auth mount (default `harmony-developer`).
pub const OPENBAO_JWT_ROLE: &str = "OPENBAO_JWT_ROLE";

/// The OpenID provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
pub const HARMONY_SSO_URL: &str = "HARMONY_SSO_URL";
/// The public client id of the device-code application.
pub const HARMONY_SSO_CLIENT_ID: &str = "HARMONY_SSO_CLIENT_ID";
/// Zitadel project id: adds the project-audience scope to the device-code request.
pub const HARMONY_SSO_PROJECT_ID: &str = "HARMONY_SSO_PROJECT_ID";
/// A PEM file of extra CA certificates the OpenID provider's HTTPS is checked against (in
/// addition to the system roots).
pub const HARMONY_SSO_CACERT: &str = "HARMONY_SSO_CACERT";
/// Set to `0`/`false` to never open a browser during the device flow.
pub const HARMONY_SSO_OPEN_BROWSER: &str = "HARMONY_SSO_OPEN_BROWSER";

/// Set to `1`/`true` to forbid prompts and device flows (also implied when stdin is not a TTY).
pub const HARMONY_NON_INTERACTIVE: &str = "HARMONY_NON_INTERACTIVE";

/// The environment (e.g. `prod`) whose overlay is read on top of each config's base document,
/// for the `harmony` CLI (`--env`) and `ConfigManager`'s store source. Unset or empty: the base
/// alone, as without environments.
pub const HARMONY_ENV: &str = "HARMONY_ENV";

/// The project file (`harmony.toml`) the `harmony` CLI reads instead of looking for one from the
/// working directory up (`--project-file`); `/dev/null` reads none.
pub const HARMONY_PROJECT_FILE: &str = "HARMONY_PROJECT_FILE";

/// Prefix of the per-field config variables: `HARMONY_<KEY>_<FIELD>`.
pub const HARMONY_CONFIG_PREFIX: &str = "HARMONY";

/// Path to the `bao` binary used by the test kit.
pub const HARMONY_TEST_BAO: &str = "HARMONY_TEST_BAO";
/// Path to `node` used by the test kit to run the test OpenID provider.
pub const HARMONY_TEST_NODE: &str = "HARMONY_TEST_NODE";

/// The editor `harmony config edit` opens (preferred over `EDITOR`), e.g. `code --wait`.
pub const VISUAL: &str = "VISUAL";
/// The editor `harmony config edit` opens when `VISUAL` is unset (default `vi` on a terminal).
pub const EDITOR: &str = "EDITOR";

/// Log filter for the CLI (tracing's `EnvFilter` syntax).
pub const RUST_LOG: &str = "RUST_LOG";

/// A PEM bundle read as the system's CA certificates instead of the distribution's (OpenSSL's
/// convention, as `rustls-native-certs` reads it); only for `https://` servers.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// Directories (`:`-separated) of PEM CA certificates read as the system's, with or instead of
/// [`SSL_CERT_FILE`].
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";

/// The executable search path: `k3d` and `helm` found there are used when they report the
/// pinned version (else the verified download under `harmony_data_dir()/bin` is).
pub const PATH: &str = "PATH";

/// Cluster name the `#[ignore]` live tests of the CLI read state for (default `harmony`).
pub const HARMONY_LIVE_CLUSTER: &str = "HARMONY_LIVE_CLUSTER";

/// GitHub Actions: the URL a job requests its OIDC id_token from (set when the workflow has
/// `permissions: id-token: write`).
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions: the bearer token for [`ACTIONS_ID_TOKEN_REQUEST_URL`].
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// GitHub Actions: `OWNER/REPO` of the running workflow (names the default CI role).
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// GitLab CI: `GROUP/PROJECT` of the running pipeline (names the default CI role).
pub const CI_PROJECT_PATH: &str = "CI_PROJECT_PATH";
/// A CI job's OIDC id_token itself (GitLab `id_tokens:`, or any CI), for the `jwt-ci` login.
pub const HARMONY_OIDC_TOKEN: &str = "HARMONY_OIDC_TOKEN";
/// A file holding a CI job's OIDC id_token (read at sign-in).
pub const HARMONY_OIDC_TOKEN_FILE: &str = "HARMONY_OIDC_TOKEN_FILE";
/// The OpenBao JWT role a CI job signs in with (default: derived from the repository, as the
/// bootstrap's `--ci` names it, e.g. `github-acme-app`).
pub const HARMONY_CI_ROLE: &str = "HARMONY_CI_ROLE";
/// The audience a CI id_token is requested for and bound to (default: the OpenBao URL).
pub const HARMONY_CI_AUDIENCE: &str = "HARMONY_CI_AUDIENCE";
/// The JWT auth mount trusting CI issuers (default `jwt-ci`).
pub const HARMONY_CI_AUTH_MOUNT: &str = "HARMONY_CI_AUTH_MOUNT";
/// The GitHub REST API the bootstrap's `--ci` asks for a repository's immutable ids and default
/// branch (default `https://api.github.com`; GitHub Enterprise Server: `https://HOST/api/v3`).
pub const HARMONY_GITHUB_API_URL: &str = "HARMONY_GITHUB_API_URL";
/// The GitLab REST API (v4) the bootstrap's `--ci` asks for a project's id (default: the
/// issuer's `/api/v4`, e.g. `https://gitlab.com/api/v4`).
pub const HARMONY_GITLAB_API_URL: &str = "HARMONY_GITLAB_API_URL";

/// Where cached sessions keep their tokens: `keychain` (the OS keychain: macOS Keychain, Windows
/// Credential Manager, Linux kernel keyutils) or `file` (a 0600 file). Default: `keychain` when one
/// answers, else `file`.
pub const HARMONY_SESSION_STORE: &str = "HARMONY_SESSION_STORE";

/// The Docker daemon the deploy's preflight pings (`unix:///path` or `tcp://host:port`, as the
/// Docker CLI and k3d read it); unset means `unix:///var/run/docker.sock`.
pub const DOCKER_HOST: &str = "DOCKER_HOST";

/// The proxy for HTTPS, as most tools read it (upper case first). Harmony's Kubernetes client
/// honours it only for an existing cluster whose API server `NO_PROXY` does not cover, never for
/// the local k3d cluster (`harmony-k8s`, `proxy.rs`); helm reads it for chart downloads.
pub const HTTPS_PROXY_ALIASES: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];

/// Hosts that bypass the proxy (comma-separated names, domain suffixes, addresses, CIDRs).
pub const NO_PROXY_ALIASES: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// The kubeconfig files (`:`-separated, merged) an existing-cluster deploy (`--kube-context`)
/// reads its context from, as kube-rs and kubectl read them; unset means `~/.kube/config`.
pub const KUBECONFIG: &str = "KUBECONFIG";

/// The kubeconfig context the `#[ignore]` existing-cluster live test deploys onto.
pub const HARMONY_LIVE_CONTEXT: &str = "HARMONY_LIVE_CONTEXT";

/// The domain (`bao.<domain>`, `sso.<domain>`) the existing-cluster live test publishes under.
pub const HARMONY_LIVE_DOMAIN: &str = "HARMONY_LIVE_DOMAIN";

/// The cert-manager ClusterIssuer the existing-cluster live test passes as `--cluster-issuer`
/// (unset: no TLS flag; something else must terminate TLS for both hosts).
pub const HARMONY_LIVE_CLUSTER_ISSUER: &str = "HARMONY_LIVE_CLUSTER_ISSUER";

/// The image (`REPOSITORY:TAG`, a Docker Hub repository) of Zitadel's setup and cleanup Jobs'
/// kubectl containers, for both deploying binaries' `--kubectl-image` (default
/// `harmony::zitadel::values::KubectlImage::default`, kubectl within one minor of the k3s that
/// k3d starts): set it to a kubectl within one minor of another cluster's Kubernetes.
pub const HARMONY_KUBECTL_IMAGE: &str = "HARMONY_KUBECTL_IMAGE";
