//! Bounded retry with a fresh client per attempt.
//!
//! Right after the CloudNativePG operator is installed, two races are normal rather than
//! exceptional: the `clusters.postgresql.cnpg.io` CRD is not yet in the API server's discovery
//! (and a kube client caches discovery, so a reused client never sees it appear), and the
//! `mcluster.cnpg.io` webhook has no ready endpoint yet. Later, the PostgreSQL primary and its
//! `-rw` service take 15–30 s to exist. Each is settled by waiting and trying again **with a client
//! built afresh**, which is why [`retry_with_fresh_client`] takes a factory, not a client.
//!
//! The loop is bounded ([`RetryPolicy`], 5 × 15 s by default), logs every failed attempt with the
//! error it saw, and its final error says what it was waiting for.

use std::{fmt, future::Future, time::Duration};

/// How often and how patiently [`retry_with_fresh_client`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included. Zero is treated as one.
    pub attempts: u32,
    /// Pause between two attempts.
    pub delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 15 s apart: long enough for CRD registration (5–15 s) and a PostgreSQL
    /// primary to come up (15–30 s) on a cold k3d cluster.
    fn default() -> Self {
        Self {
            attempts: 5,
            delay: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// A policy with `attempts` attempts and no pause, for tests.
    pub fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            delay: Duration::ZERO,
        }
    }
}

/// Every attempt failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "gave up waiting for {waiting_for} after {attempts} attempts; the last attempt failed \
     (see the cause below). Check the operator and database pods in the cluster, then re-run: \
     every step is idempotent"
)]
pub struct RetryExhausted<E>
where
    E: std::error::Error + 'static,
{
    /// What the loop waited for, e.g. "CRD clusters.postgresql.cnpg.io to be established".
    pub waiting_for: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// The error of the last attempt.
    #[source]
    pub last: E,
}

/// Runs `op` with a client from `connect` until it succeeds, at most `policy.attempts` times.
///
/// Each attempt builds a new client (`connect` failing counts as a failed attempt too: the API
/// server may be restarting). Every failure is logged at `warn` with the error chain and what the
/// loop waits for; after the last one the error is [`RetryExhausted`], naming `waiting_for` and
/// keeping the last error as its source.
pub async fn retry_with_fresh_client<C, T, E, Connect, ConnectFut, Op, OpFut>(
    policy: RetryPolicy,
    waiting_for: &str,
    connect: Connect,
    op: Op,
) -> Result<T, RetryExhausted<E>>
where
    E: std::error::Error + 'static,
    Connect: Fn() -> ConnectFut,
    ConnectFut: Future<Output = Result<C, E>>,
    Op: Fn(C) -> OpFut,
    OpFut: Future<Output = Result<T, E>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 1;
    loop {
        let result = match connect().await {
            Ok(client) => op(client).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(attempt, waiting_for, "succeeded after retrying");
                }
                return Ok(value);
            }
            Err(last) if attempt >= attempts => {
                tracing::warn!(
                    attempt,
                    attempts,
                    waiting_for,
                    error = %ErrorChain(&last),
                    "last attempt failed; giving up"
                );
                return Err(RetryExhausted {
                    waiting_for: waiting_for.to_owned(),
                    attempts,
                    last,
                });
            }
            Err(e) => {
                tracing::warn!(
                    attempt,
                    attempts,
                    waiting_for,
                    error = %ErrorChain(&e),
                    retry_in = ?policy.delay,
                    "attempt failed; retrying with a fresh client"
                );
                tokio::time::sleep(policy.delay).await;
                attempt += 1;
            }
        }
    }
}

/// Displays an error with its whole `source()` chain on one line, for logs.
pub(crate) struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn error_chain_joins_sources() {
        assert_eq!(ErrorChain(&Outer(Inner)).to_string(), "outer: inner");
    }

    #[test]
    fn default_policy_is_five_times_fifteen_seconds() {
        let p = RetryPolicy::default();
        assert_eq!((p.attempts, p.delay), (5, Duration::from_secs(15)));
    }
}
