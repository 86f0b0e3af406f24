//! Progress and logs on stderr.
//!
//! Library crates describe long work with `tracing` spans at INFO level and know nothing about
//! terminals. This layer turns each such span into a spinner on a terminal (one line per step,
//! nested steps indented, finished with ✓ and the time taken), or into plain `==>` lines when
//! stderr is not a terminal. Log events go through the same [`MultiProgress`], so a log line never
//! tears a spinner.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, fmt::MakeWriter, prelude::*};

/// Steps shorter than this are not reported as finished on a non-terminal, to keep logs short.
const QUIET_BELOW: Duration = Duration::from_millis(500);

struct Step {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
}

/// The spans-to-progress layer.
pub struct ProgressLayer {
    multi: MultiProgress,
    tty: bool,
    steps: Mutex<HashMap<Id, Step>>,
}

impl ProgressLayer {
    fn new(multi: MultiProgress, tty: bool) -> Self {
        Self {
            multi,
            tty,
            steps: Mutex::new(HashMap::new()),
        }
    }
}

/// Formats a span's fields as `name (k=v, ...)`, preferring a `message` field when present.
#[derive(Default)]
struct LabelVisitor {
    message: Option<String>,
    fields: String,
}

impl Visit for LabelVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.push(field, value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.push(field, &format!("{value:?}"));
        }
    }
}

impl LabelVisitor {
    fn push(&mut self, field: &Field, value: &str) {
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
        let _ = write!(self.fields, "{}={}", field.name(), value);
    }

    fn label(self, name: &str) -> String {
        let head = self.message.unwrap_or_else(|| name.replace('_', " "));
        if self.fields.is_empty() {
            head
        } else {
            format!("{head} ({})", self.fields)
        }
    }
}

impl<S> Layer<S> for ProgressLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if *attrs.metadata().level() > Level::INFO {
            return;
        }
        let mut visitor = LabelVisitor::default();
        attrs.record(&mut visitor);
        let depth = ctx.span(id).map(|s| s.scope().skip(1).count()).unwrap_or(0);
        let label = format!(
            "{}{}",
            "  ".repeat(depth),
            visitor.label(attrs.metadata().name())
        );
        let bar = if self.tty {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(label.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            let _ = writeln!(std::io::stderr(), "==> {}", label.trim_start());
            None
        };
        if let Ok(mut steps) = self.steps.lock() {
            steps.insert(
                id.clone(),
                Step {
                    bar,
                    label,
                    started: Instant::now(),
                },
            );
        }
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let Some(step) = self.steps.lock().ok().and_then(|mut s| s.remove(&id)) else {
            return;
        };
        let took = step.started.elapsed();
        match step.bar {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(format!("✓ {} ({:.1}s)", step.label, took.as_secs_f64()));
            }
            None if took >= QUIET_BELOW => {
                let _ = writeln!(
                    std::io::stderr(),
                    "    done: {} ({:.1}s)",
                    step.label.trim_start(),
                    took.as_secs_f64()
                );
            }
            None => {}
        }
    }
}

/// Writes log lines to stderr without tearing spinners.
#[derive(Clone)]
pub struct SuspendingStderr {
    multi: MultiProgress,
}

/// One log line's buffer, flushed through [`MultiProgress::suspend`].
pub struct LineWriter {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let _ = std::io::stderr().write_all(&buf);
        });
    }
}

impl<'a> MakeWriter<'a> for SuspendingStderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}

/// Install the global subscriber: progress layer + log lines (WARN by default, `-v` DEBUG,
/// `-vv` TRACE for Harmony's crates; `RUST_LOG` overrides). Returns the [`MultiProgress`] so
/// prompts can be wrapped in `suspend`.
pub fn init(verbose: u8, tty: bool) -> MultiProgress {
    let multi = MultiProgress::new();
    if !tty {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let default = match verbose {
        0 => "warn",
        1 => {
            "warn,harmony=debug,harmony_k8s=debug,harmony_secret=debug,harmony_config=debug,harmony_sso=debug"
        }
        _ => {
            "info,harmony=trace,harmony_k8s=trace,harmony_secret=trace,harmony_config=trace,harmony_sso=trace"
        }
    };
    let filter = EnvFilter::try_from_env(harmony_env::vars::RUST_LOG)
        .unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(SuspendingStderr {
            multi: multi.clone(),
        })
        .with_target(verbose > 0)
        .without_time()
        .with_ansi(tty)
        .with_filter(filter);
    // Steps are shown whatever the log filter says: they are the user's progress, not logs.
    let steps = ProgressLayer::new(multi.clone(), tty).with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("harmony", Level::INFO)
            .with_target("harmony_k8s", Level::INFO)
            .with_target("harmony_secret", Level::INFO)
            .with_target("harmony_config", Level::INFO)
            .with_target("harmony_sso", Level::INFO),
    );
    let _ = tracing_subscriber::registry()
        .with(steps)
        .with(logs)
        .try_init();
    multi
}
