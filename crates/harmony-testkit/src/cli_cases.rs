//! Command lines both binaries must refuse the same way (exit 2, naming the flag), because they
//! share the flags (`harmony::deploy::flags::ClusterFlags`). Each binary's tests run these after
//! its own subcommand (`harmony deploy`, or the example's default deploy mode).

/// Arguments, and the flag the usage error must name.
pub const CLUSTER_FLAG_MISTAKES: &[(&[&str], &str)] = &[
    (&["--kube-context", "prod"], "--domain"),
    (&["--domain", "example.com"], "--kube-context"),
    (
        &[
            "--kube-context",
            "prod",
            "--domain",
            "example.com",
            "--tls-secret",
            "t",
            "--cluster-issuer",
            "i",
        ],
        "--cluster-issuer",
    ),
    (&["--profile", "huge"], "--profile"),
    (&["--profile", "ha"], "--kube-context"),
    (
        &["--kube-context", "prod", "--domain", "https://example.com"],
        "--domain",
    ),
    (
        &["--kube-context", "prod", "--domain", "example.com:443"],
        "--domain",
    ),
    (&["--tls-secret", "t"], "--kube-context"),
];

/// `--environments` / `--access` mistakes both binaries must refuse the same way (exit 2, before
/// any request), after `--openbao-url URL` (the example) or `bootstrap --openbao-url URL`.
pub const ENVIRONMENT_FLAG_MISTAKES: &[(&[&str], &str)] = &[
    (&["--access", "developer=dev:write"], "--environments"),
    (&["--environments", "Prod"], "\"Prod\" is not a valid name"),
    (
        &["--environments", "dev,base"],
        "\"base\" names the shared base",
    ),
    (
        &["--environments", "dev", "--access", "developer=qa:write"],
        "not one of --environments dev",
    ),
    (
        &["--environments", "dev", "--access", "developer=dev:admin"],
        "not read, write or none",
    ),
    (
        &["--environments", "dev", "--access", "developer=base:none"],
        "everyone signed in reads the base",
    ),
];
