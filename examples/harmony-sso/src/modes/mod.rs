//! One module per mode of the CLI.

use indicatif::MultiProgress;

use crate::cli::{Args, Mode};

mod cleanup;
mod demo;
mod deploy;
mod existing;
mod sso;
mod target;

/// What the modes need to know about the terminal.
pub struct Ui {
    /// May we prompt and wait for a person?
    pub interactive: bool,
    /// Spinners; wrap prompts in `multi.suspend`.
    pub multi: MultiProgress,
}

impl Ui {
    /// A line for the person on stderr (never data), without tearing spinners.
    pub fn note(&self, line: String) {
        self.multi.suspend(|| eprintln!("{line}"));
    }
}

/// Run the selected mode.
pub async fn run(args: &Args, mode: Mode, ui: &Ui) -> anyhow::Result<()> {
    match mode {
        Mode::Deploy => deploy::run(args, ui).await,
        Mode::BootstrapExisting => existing::run(args, ui).await,
        Mode::Demo => {
            let target = target::from_args(args)?;
            let settings = target::settings(&target).await?;
            demo::run(settings, ui, "demo").await
        }
        Mode::Cleanup => cleanup::run(args, ui).await,
        Mode::SsoDemo => sso::run(args, ui).await,
    }
}
