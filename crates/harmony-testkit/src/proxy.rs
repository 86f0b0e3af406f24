//! [`RequestProxy`]: a loopback TCP relay in front of a real server that counts the HTTP/1.1
//! requests passing through it and can hold each one back for a fixed delay — to check how
//! many round trips a command makes, and whether it makes them one after another or at once.
//!
//! It relays bytes unchanged (the server is still the real one). A request is counted where a
//! line of the client's stream starts with an HTTP method and ` /` (request lines; header and
//! JSON body lines never do). Each connection is relayed by its own task, so delays of
//! requests on different connections overlap, as they would on a slow network.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "LIST", "SCAN",
];

/// A relay on a free loopback port; stops when dropped.
#[derive(Debug)]
pub struct RequestProxy {
    url: String,
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RequestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many request lines start in `chunk`, given whether the previous chunk ended a line.
fn request_lines(chunk: &[u8], at_line_start: &mut bool) -> u64 {
    let mut n = 0;
    let mut start = *at_line_start;
    for (i, &b) in chunk.iter().enumerate() {
        if start {
            let rest = &chunk[i..];
            if METHODS.iter().any(|m| {
                rest.len() > m.len() + 1
                    && rest.starts_with(m.as_bytes())
                    && rest[m.len()] == b' '
                    && rest[m.len() + 1] == b'/'
            }) {
                n += 1;
            }
        }
        start = b == b'\n';
    }
    *at_line_start = start;
    n
}

impl RequestProxy {
    /// A relay to `upstream` (`http://HOST:PORT`, any path ignored) holding each request back
    /// for `delay` before passing it on.
    pub async fn start(upstream: &str, delay: Duration) -> std::io::Result<Self> {
        let parsed = url::Url::parse(upstream)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let target = format!(
            "{}:{}",
            parsed.host_str().unwrap_or("127.0.0.1"),
            parsed.port_or_known_default().unwrap_or(80)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let count = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&count);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        relay(client, server, counter, delay).await;
                    }
                });
            }
        });
        Ok(Self { url, count, task })
    }

    /// The relay's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests relayed so far.
    pub fn requests(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Start counting again from zero.
    pub fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
    }
}

async fn relay(client: TcpStream, server: TcpStream, count: Arc<AtomicU64>, delay: Duration) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at_line_start = true;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let requests = request_lines(&buf[..n], &mut at_line_start);
            if requests > 0 {
                count.fetch_add(requests, Ordering::SeqCst);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_counted_across_chunks_and_bodies_are_not() {
        let mut start = true;
        let two = b"GET /v1/a HTTP/1.1\r\nhost: x\r\n\r\nPOST /v1/b HTTP/1.1\r\ncontent-length: 20\r\n\r\n{\"GET /\": \"x\"}";
        assert_eq!(request_lines(two, &mut start), 2);
        assert_eq!(request_lines(b"GE", &mut start), 0);
        let mut start = true;
        assert_eq!(request_lines(b"x: y\r\n", &mut start), 0);
        assert!(start);
        assert_eq!(request_lines(b"SCAN /v1/s HTTP/1.1\r\n", &mut start), 1);
    }
}
