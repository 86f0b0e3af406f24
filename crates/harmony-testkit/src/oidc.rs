//! The test OpenID provider (see `tests/oidc-provider/`). Filled in by the SSO work.
