//! What the integration-test binaries share: the KV policy their users get, and a capture of
//! every log line the binary emits (for the "no secret in logs" tests).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Read/write on the store's default prefix, list on its metadata.
pub const POLICY: &str = r#"
path "secret/data/harmony/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/harmony/*" { capabilities = ["read", "delete", "list"] }
"#;

/// Everything any test in this binary logs, at TRACE, from every crate (reqwest and hyper too).
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || SharedWriter(writer.clone()))
            .finish();
        // Another harness may have installed one; then this binary's logs go there instead and
        // the leak tests fail loudly rather than passing on an empty buffer.
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

/// The captured logs so far, as text.
pub fn captured_text(logs: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
