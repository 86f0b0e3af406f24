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
/// Set to `0`/`false` to never open a browser during the device flow.
pub const HARMONY_SSO_OPEN_BROWSER: &str = "HARMONY_SSO_OPEN_BROWSER";

/// Set to `1`/`true` to forbid prompts and device flows (also implied when stdin is not a TTY).
pub const HARMONY_NON_INTERACTIVE: &str = "HARMONY_NON_INTERACTIVE";

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

/// The executable search path: `k3d` and `helm` found there are used when they report the
/// pinned version (else the verified download under `harmony_data_dir()/bin` is).
pub const PATH: &str = "PATH";

/// Cluster name the `#[ignore]` live tests of the CLI read state for (default `harmony`).
pub const HARMONY_LIVE_CLUSTER: &str = "HARMONY_LIVE_CLUSTER";
