//! zitadel (in progress)
