//! The vocabulary of the auth chain, shared by [`crate::auth`] (which runs it), its SSO steps in
//! [`crate::oidc`], the settings (which order the steps) and the errors (which report each step):
//! a leaf module (it imports nothing of the crate), so each of those imports it and none of them
//! has to import another for it.

use secrecy::SecretString;

/// One way of obtaining a token, in the order the chain tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthStep {
    /// The token given in the settings (`OPENBAO_TOKEN`), checked with `lookup-self`.
    ExplicitToken,
    /// A token cached by an earlier login, checked with `lookup-self` and renewed when it is
    /// renewable and has less than a third of its TTL left.
    CachedSession,
    /// `POST auth/<mount>/login/<username>` with the configured password.
    Userpass,
    /// The cached SSO refresh token → new id_token → JWT login; no user interaction.
    SilentRefresh,
    /// The OIDC device flow (a person approves in the browser) → JWT login. Only when
    /// interactive or explicitly allowed.
    DeviceFlow,
    /// A CI job's own OIDC id_token → JWT login at the CI mount (see [`crate::ci`]).
    CiIdentity,
}

impl AuthStep {
    /// The chain used unless the settings say otherwise.
    pub const DEFAULT_CHAIN: &'static [AuthStep] = &[
        AuthStep::ExplicitToken,
        AuthStep::CachedSession,
        AuthStep::Userpass,
        AuthStep::SilentRefresh,
        AuthStep::DeviceFlow,
    ];

    /// The chain in CI ([`crate::OpenbaoSettings::with_ci`]): nothing cached, nothing that
    /// needs a person.
    pub const CI_CHAIN: &'static [AuthStep] = &[
        AuthStep::ExplicitToken,
        AuthStep::CiIdentity,
        AuthStep::Userpass,
    ];
}

impl std::fmt::Display for AuthStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthStep::ExplicitToken => "explicit token",
            AuthStep::CachedSession => "cached session",
            AuthStep::Userpass => "userpass login",
            AuthStep::SilentRefresh => "SSO silent refresh",
            AuthStep::DeviceFlow => "SSO device flow",
            AuthStep::CiIdentity => "CI identity (OIDC id_token)",
        })
    }
}

/// How the store's current token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethodUsed {
    /// The explicit token from the settings.
    Token,
    /// A cached session from an earlier login (possibly renewed).
    CachedSession,
    /// A fresh userpass login.
    Userpass,
    /// A JWT login with an id_token from the SSO refresh-token grant.
    SilentRefresh,
    /// A JWT login with an id_token from an SSO device flow.
    DeviceFlow,
    /// A JWT login with the CI job's own id_token.
    CiIdentity,
}

/// A token the chain settled on.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The OpenBao token.
    pub token: SecretString,
    /// Which step produced it.
    pub method: AuthMethodUsed,
}
