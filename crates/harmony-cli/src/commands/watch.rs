//! `harmony run --watch`: the program runs as harmony's child; every `--interval` harmony asks
//! OpenBao for the documents' versions, and on a change re-reads them and restarts the program
//! (SIGTERM, then SIGKILL after `--grace`), saying so on stderr. SIGTERM and SIGHUP sent to
//! harmony are passed to the program (SIGINT too, unless stdin is a terminal: a terminal's Ctrl-C
//! already reaches the whole foreground process group, and a second one would look like a
//! double Ctrl-C); harmony then ends with the program's exit code. A check that fails (OpenBao
//! gone) is said once and retried at the next interval; the program keeps running.

use std::ffi::OsStr;
use std::process::ExitCode;

use crate::cli::RunArgs;
use crate::context::Context;

#[cfg(not(unix))]
pub async fn run(
    _ctx: &Context,
    _args: &RunArgs,
    _versions: Vec<(String, u64)>,
    _command: std::process::Command,
    _program: &OsStr,
) -> anyhow::Result<ExitCode> {
    Err(crate::UsageError(
        "--watch needs a Unix system (it stops the program with signals)".to_owned(),
    )
    .into())
}

#[cfg(unix)]
pub use unix::run;

#[cfg(unix)]
mod unix {
    use std::io::IsTerminal as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::ExitStatus;

    use rustix::process::{Pid, Signal, kill_process};
    use tokio::process::Child;
    use tokio::signal::unix::{SignalKind, signal};

    use super::*;
    use crate::commands::config::Team;
    use crate::offline::human_age;

    pub async fn run(
        ctx: &Context,
        args: &RunArgs,
        mut versions: Vec<(String, u64)>,
        command: std::process::Command,
        program: &OsStr,
    ) -> anyhow::Result<ExitCode> {
        let name = program.to_string_lossy().into_owned();
        let mut signals = Signals::new()?;
        let mut child = spawn(command, &name)?;
        let mut poller = Poller::default();
        let every = args.interval.max(std::time::Duration::from_millis(100));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        eprintln!(
            "harmony: watching {} every {}; {name} restarts when one changes",
            keys(&versions),
            human_age(every)
        );
        loop {
            tokio::select! {
                status = child.wait() => return Ok(exit_code(status?)),
                signal = signals.next() => {
                    if signal != Signal::INT || !std::io::stdin().is_terminal() {
                        send(&child, signal);
                    }
                    // The program decides how to end; its exit code becomes ours.
                    return Ok(exit_code(child.wait().await?));
                }
                _ = ticker.tick() => {
                    let Some(change) = poller.change(ctx, &versions, &name).await else {
                        continue;
                    };
                    let (command, now) = match super::super::run::reread(ctx, args).await {
                        Ok(read) => read,
                        Err(e) => {
                            eprintln!(
                                "warning: {change}, but it could not be read: {e:#}; {name} keeps running"
                            );
                            continue;
                        }
                    };
                    eprintln!(
                        "harmony: {change}; restarting {name} (SIGTERM, then SIGKILL after {})",
                        human_age(args.grace)
                    );
                    if let Some(status) = stop(&mut child, args.grace, &name, &mut signals).await? {
                        // A signal for harmony arrived while stopping: end with the program.
                        return Ok(exit_code(status));
                    }
                    versions = now;
                    child = spawn(command, &name)?;
                }
            }
        }
    }

    fn keys(versions: &[(String, u64)]) -> String {
        versions
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn spawn(command: std::process::Command, name: &str) -> anyhow::Result<Child> {
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        command.spawn().map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "could not start {name}; check the name and that it is on PATH"
            ))
        })
    }

    fn send(child: &Child, signal: Signal) {
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        if let Some(pid) = pid {
            // The program may have just ended on its own; wait() reports that.
            let _ = kill_process(pid, signal);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. `Some(status)` when harmony itself was told to
    /// stop meanwhile (the program was told too, and has ended).
    async fn stop(
        child: &mut Child,
        grace: std::time::Duration,
        name: &str,
        signals: &mut Signals,
    ) -> anyhow::Result<Option<ExitStatus>> {
        send(child, Signal::TERM);
        tokio::select! {
            status = child.wait() => {
                status?;
                Ok(None)
            }
            signal = signals.next() => {
                send(child, signal);
                Ok(Some(child.wait().await?))
            }
            _ = tokio::time::sleep(grace) => {
                eprintln!("harmony: {name} did not stop within {}; sending SIGKILL", human_age(grace));
                send(child, Signal::KILL);
                child.wait().await?;
                Ok(None)
            }
        }
    }

    /// The program's exit code, or 128 + the signal that ended it (as shells report it).
    fn exit_code(status: ExitStatus) -> ExitCode {
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        ExitCode::from(u8::try_from(code).unwrap_or(1))
    }

    /// SIGINT, SIGTERM and SIGHUP for harmony.
    struct Signals {
        int: tokio::signal::unix::Signal,
        term: tokio::signal::unix::Signal,
        hup: tokio::signal::unix::Signal,
    }

    impl Signals {
        fn new() -> anyhow::Result<Self> {
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }

        async fn next(&mut self) -> Signal {
            tokio::select! {
                _ = self.int.recv() => Signal::INT,
                _ = self.term.recv() => Signal::TERM,
                _ = self.hup.recv() => Signal::HUP,
            }
        }
    }

    /// Asks OpenBao for the documents' versions; says once when it cannot, and when it can again.
    #[derive(Default)]
    struct Poller {
        team: Option<Team>,
        failing: bool,
    }

    impl Poller {
        /// `"KEY changed (version a → b)"` for the first document whose version moved.
        async fn change(
            &mut self,
            ctx: &Context,
            versions: &[(String, u64)],
            name: &str,
        ) -> Option<String> {
            match self.check(ctx, versions).await {
                Ok(change) => {
                    if std::mem::take(&mut self.failing) {
                        eprintln!("harmony: OpenBao answers again; watching for changes");
                    }
                    change
                }
                Err(e) => {
                    // Sign in again next time: the token may be what failed.
                    self.team = None;
                    if !std::mem::replace(&mut self.failing, true) {
                        eprintln!(
                            "warning: cannot check {} for changes ({}); {name} keeps running and \
                             harmony retries at every interval",
                            keys(versions),
                            crate::render_chain(&e)
                        );
                    }
                    None
                }
            }
        }

        async fn check(
            &mut self,
            ctx: &Context,
            versions: &[(String, u64)],
        ) -> anyhow::Result<Option<String>> {
            let team = match &self.team {
                Some(team) => team,
                None => self
                    .team
                    .insert(Team::new(ctx.connect().await?, ctx.env.clone())),
            };
            for (key, version) in versions {
                // With --env the version read is the sum of both layers' (see offline::Read).
                let now = match &team.env {
                    None => team.document(key).await?.map(|d| d.version),
                    Some(_) => {
                        let (base, overlay) =
                            tokio::join!(team.base_document(key), team.document(key));
                        let (base, overlay) = (base?, overlay?);
                        (base.is_some() || overlay.is_some()).then(|| {
                            base.map_or(0, |d| d.version) + overlay.map_or(0, |d| d.version)
                        })
                    }
                };
                if now != Some(*version) {
                    let now = now.map_or_else(|| "deleted".to_owned(), |n| n.to_string());
                    return Ok(Some(format!("{key} changed (version {version} → {now})")));
                }
            }
            Ok(None)
        }
    }
}
