//! Forwarding a local TCP port to a pod, like `kubectl port-forward`, without kubectl.
//!
//! The local side is an accept loop on `127.0.0.1:0`; every accepted connection asks a
//! *connector* for its own upstream stream and copies bytes both ways with
//! [`tokio::io::copy_bidirectional`]. For a pod the connector opens a kube `Portforwarder`
//! (one websocket per connection, as kubectl does); anything `AsyncRead + AsyncWrite` works,
//! which is how the loop is tested with in-memory streams and how other crates can point the
//! same code at a local server.
//!
//! The [`PortForward`] handle owns a cancellation token: dropping it stops the accept loop and
//! closes every forwarded connection.

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{K8sClient, K8sError, with_timeout};

/// Bound on opening one upstream stream (for a pod: the websocket upgrade).
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running port-forward. Forwarding stops when this is dropped.
#[derive(Debug)]
pub struct PortForward {
    local_addr: SocketAddr,
    target: String,
    cancel: CancellationToken,
    accept_loop: JoinHandle<()>,
}

impl PortForward {
    /// The local address (`127.0.0.1:<ephemeral port>`) that forwards to the target.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:<port>`: the base URL for an HTTP service behind the forward.
    pub fn local_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// What this forwards to, e.g. `openbao/openbao-0:8200`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Listens on `127.0.0.1:0` and forwards every accepted connection to a fresh stream from
    /// `connect`. `target` names the upstream in logs and errors.
    ///
    /// A connection whose upstream cannot be opened is closed (and the failure logged); the
    /// listener keeps serving others.
    pub async fn with_connector<C, Fut, S>(
        target: impl Into<String>,
        connect: C,
    ) -> Result<Self, K8sError>
    where
        C: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, K8sError>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let target = target.into();
        let bind_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let bind_err = |source| K8sError::PortForwardBind {
            addr: bind_addr,
            target: target.clone(),
            source,
        };
        let listener = TcpListener::bind(bind_addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let cancel = CancellationToken::new();
        let span = tracing::info_span!("k8s.port_forward", target = %target, local = %local_addr);
        let accept_loop =
            tokio::spawn(accept_loop(listener, Arc::new(connect), cancel.clone()).instrument(span));
        tracing::info!(target = %target, local = %local_addr, "port-forward listening");
        Ok(Self {
            local_addr,
            target,
            cancel,
            accept_loop,
        })
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.accept_loop.abort();
        tracing::debug!(target = %self.target, local = %self.local_addr, "port-forward stopped");
    }
}

async fn accept_loop<C, Fut, S>(listener: TcpListener, connect: Arc<C>, cancel: CancellationToken)
where
    C: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, K8sError>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                let connect = Arc::clone(&connect);
                let cancel = cancel.clone();
                let span = tracing::debug_span!("connection", %peer);
                tokio::spawn(forward_one(client, connect, cancel).instrument(span));
            }
            Err(err) => {
                // Typically out of file descriptors: pause instead of spinning.
                tracing::warn!(error = %err, "accepting a port-forward connection failed");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

async fn forward_one<C, Fut, S>(mut client: TcpStream, connect: Arc<C>, cancel: CancellationToken)
where
    C: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, K8sError>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upstream = tokio::select! {
        () = cancel.cancelled() => return,
        upstream = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, connect()) => upstream,
    };
    let mut upstream = match upstream {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "cannot open the upstream stream; closing this connection");
            return;
        }
        Err(_) => {
            tracing::warn!(
                timeout = ?UPSTREAM_CONNECT_TIMEOUT,
                "opening the upstream stream timed out; closing this connection"
            );
            return;
        }
    };
    tokio::select! {
        () = cancel.cancelled() => {
            tracing::debug!("port-forward stopped; closing connection");
        }
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok((sent, received)) => tracing::debug!(sent, received, "connection closed"),
            Err(err) => tracing::debug!(error = %err, "connection ended with an error"),
        },
    }
}

impl K8sClient {
    /// Forwards `127.0.0.1:<ephemeral>` to `remote_port` of `namespace/pod`; read the address
    /// from [`PortForward::local_addr`]. Each local connection gets its own stream to the pod.
    /// Forwarding stops when the handle is dropped.
    ///
    /// Fails early when the pod does not exist; a pod that is not listening shows up as closed
    /// connections (logged), not as an error here.
    pub async fn port_forward(
        &self,
        namespace: &str,
        pod: &str,
        remote_port: u16,
    ) -> Result<PortForward, K8sError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let target = format!("{namespace}/{pod}:{remote_port}");
        with_timeout("get", &format!("Pod {namespace}/{pod}"), api.get(pod)).await?;
        let pod = pod.to_owned();
        let connector_target = target.clone();
        let connect = move || {
            let api = api.clone();
            let pod = pod.clone();
            let target = connector_target.clone();
            async move {
                let mut forwarder =
                    api.portforward(&pod, &[remote_port])
                        .await
                        .map_err(|source| K8sError::PortForwardConnect {
                            target: target.clone(),
                            source,
                        })?;
                let stream = forwarder.take_stream(remote_port).ok_or_else(|| {
                    K8sError::PortForwardNoStream {
                        target: target.clone(),
                    }
                })?;
                if let Some(error) = forwarder.take_error(remote_port) {
                    tokio::spawn(async move {
                        if let Some(message) = error.await {
                            tracing::warn!(target = %target, %message, "the pod refused the forwarded connection");
                        }
                    });
                }
                // Dropping the forwarder detaches its websocket task, which ends on its own
                // once `stream` is closed.
                Ok(stream)
            }
        };
        PortForward::with_connector(target, connect).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
        sync::mpsc,
    };

    /// A fake "pod" that answers every chunk with its upper-case form, and a connector that
    /// hands it the far end of a fresh in-memory stream per connection.
    fn uppercase_pod() -> (
        impl Fn() -> std::future::Ready<Result<DuplexStream, K8sError>> + Send + Sync + 'static,
        mpsc::UnboundedReceiver<()>,
    ) {
        let (opened_tx, opened_rx) = mpsc::unbounded_channel();
        let connect = move || {
            let (near, mut far) = tokio::io::duplex(64);
            let _ = opened_tx.send(());
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    match far.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let upper = buf[..n].to_ascii_uppercase();
                            if far.write_all(&upper).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            std::future::ready(Ok(near))
        };
        (connect, opened_rx)
    }

    async fn roundtrip(conn: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        conn.write_all(msg).await.expect("write to the forward");
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut got))
            .await
            .expect("answer within 5 s")
            .expect("read from the forward");
        got
    }

    #[tokio::test]
    async fn forwards_bytes_both_ways_for_concurrent_connections() {
        let (connect, mut opened) = uppercase_pod();
        let forward = PortForward::with_connector("test/pod:80", connect)
            .await
            .expect("listener binds");
        assert!(forward.local_addr().ip().is_loopback());
        assert_eq!(
            forward.local_url(),
            format!("http://{}", forward.local_addr())
        );

        let mut a = TcpStream::connect(forward.local_addr())
            .await
            .expect("connect a");
        let mut b = TcpStream::connect(forward.local_addr())
            .await
            .expect("connect b");
        // Interleave the two connections: each must get its own upstream.
        assert_eq!(roundtrip(&mut a, b"hello from a").await, b"HELLO FROM A");
        assert_eq!(roundtrip(&mut b, b"and from b").await, b"AND FROM B");
        assert_eq!(roundtrip(&mut a, b"again a").await, b"AGAIN A");
        opened.recv().await.expect("first upstream opened");
        opened.recv().await.expect("second upstream opened");
        assert!(
            opened.try_recv().is_err(),
            "exactly one upstream per connection"
        );
    }

    #[tokio::test]
    async fn dropping_the_handle_closes_connections_and_the_listener() {
        let (connect, _opened) = uppercase_pod();
        let forward = PortForward::with_connector("test/pod:80", connect)
            .await
            .expect("listener binds");
        let addr = forward.local_addr();
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(roundtrip(&mut conn, b"before").await, b"BEFORE");

        drop(forward);

        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the open connection is closed within 5 s");
        assert!(matches!(read, Ok(0) | Err(_)), "expected EOF, got {read:?}");

        // The listener goes away with the accept loop; poll (bounded) until connects fail.
        let mut refused = false;
        for _ in 0..50 {
            match TcpStream::connect(addr).await {
                Err(_) => {
                    refused = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert!(
            refused,
            "{addr} still accepts connections after the handle was dropped"
        );
    }

    #[tokio::test]
    async fn a_failed_upstream_closes_only_that_connection() {
        let (working, _opened) = uppercase_pod();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let connect = move || {
            let first = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let upstream = working();
            async move {
                if first {
                    Err(K8sError::PortForwardNoStream {
                        target: "test/pod:80".to_owned(),
                    })
                } else {
                    upstream.await
                }
            }
        };
        let forward = PortForward::with_connector("test/pod:80", connect)
            .await
            .expect("listener binds");

        let mut failed = TcpStream::connect(forward.local_addr())
            .await
            .expect("connect");
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), failed.read(&mut buf))
            .await
            .expect("closed within 5 s");
        assert!(matches!(read, Ok(0) | Err(_)), "expected EOF, got {read:?}");

        let mut next = TcpStream::connect(forward.local_addr())
            .await
            .expect("connect");
        assert_eq!(roundtrip(&mut next, b"still here").await, b"STILL HERE");
    }
}
