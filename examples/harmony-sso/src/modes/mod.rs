//! One module per mode of the CLI.

use indicatif::MultiProgress;

use crate::cli::{Args, Mode};

/// What the modes need to know about the terminal.
pub struct Ui {
    /// May we prompt and wait for a person?
    pub interactive: bool,
    /// Spinners; wrap prompts in `multi.suspend`.
    pub multi: MultiProgress,
}

/// Run the selected mode.
pub async fn run(args: &Args, mode: Mode, ui: &Ui) -> anyhow::Result<()> {
    let _ = (args, ui);
    anyhow::bail!("mode {mode:?} is being built")
}
