//! `harmony run --watch`: the program runs as harmony's child; every `--interval` harmony asks
//! OpenBao for the documents' versions, and on a change re-reads them and restarts the program
//! (SIGTERM, then SIGKILL after `--grace`), saying so on stderr. SIGTERM and SIGHUP sent to
//! harmony are passed to the program (SIGINT too, unless stdin is a terminal: a terminal's Ctrl-C
//! already reaches the whole foreground process group, and a second one would look like a
//! double Ctrl-C); harmony then ends with the program's exit code, sending SIGKILL if the
//! program has not ended after `--grace`. Unless stdin is a terminal, the program leads its own
//! process group and every signal goes to the group, so what it started (a server behind
//! `sh -c`) stops with it; on a terminal it stays in the terminal's foreground group (keyboard
//! and Ctrl-C keep working) and signals go to the program alone. A check runs beside the
//! signals and the program's exit (never holding them up), bounded by 60 s; one that fails
//! (OpenBao gone or hanging) is said once and retried at the next interval; the program keeps
//! running.

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
    use std::future::Future;
    use std::io::IsTerminal as _;
    use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
    use std::pin::Pin;
    use std::process::ExitStatus;
    use std::time::Duration;

    use rustix::process::{Pid, Signal, kill_process, kill_process_group, test_kill_process_group};
    use tokio::process::Child;
    use tokio::signal::unix::{SignalKind, signal};

    use super::*;
    use crate::commands::config::Team;
    use crate::offline::human_age;

    /// At most this long for one check (the versions, and the re-read after a change); each
    /// request has its own timeout too.
    const CHECK_LIMIT: Duration = Duration::from_secs(60);

    /// What one check found.
    enum Checked {
        /// Nothing to do (unchanged, or it could not tell and said so).
        Unchanged,
        /// A document changed and was read again.
        Changed {
            change: String,
            command: Box<std::process::Command>,
            now: Vec<(String, u64)>,
        },
    }

    type Check<'a> = Pin<Box<dyn Future<Output = (Poller, Checked)> + 'a>>;

    pub async fn run(
        ctx: &Context,
        args: &RunArgs,
        mut versions: Vec<(String, u64)>,
        command: std::process::Command,
        program: &OsStr,
    ) -> anyhow::Result<ExitCode> {
        let name = program.to_string_lossy().into_owned();
        let mut signals = Signals::new()?;
        // Its own process group, so a restart or a stop reaches what it started too (a server
        // behind `sh -c`). Not on a terminal: there the program stays in the terminal's
        // foreground group, to keep the keyboard and Ctrl-C.
        let own_group = !std::io::stdin().is_terminal();
        let mut child = Program::spawn(command, &name, own_group)?;
        let mut poller = Some(Poller::default());
        // The check in flight, run beside the signals and the program's exit.
        let mut check: Option<Check<'_>> = None;
        let every = args.interval.max(Duration::from_millis(100));
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
                        child.signal(signal);
                    }
                    // The program decides how to end, within --grace; its exit code becomes ours.
                    return Ok(exit_code(child.end(args.grace, &name).await?));
                }
                _ = ticker.tick(), if check.is_none() => {
                    if let Some(idle) = poller.take() {
                        check = Some(Box::pin(check_once(idle, ctx, args, versions.clone(), name.clone())));
                    }
                }
                (done, checked) = async { check.as_mut().expect("guarded by is_some").await }, if check.is_some() => {
                    check = None;
                    poller = Some(done);
                    let Checked::Changed { change, command, now } = checked else {
                        continue;
                    };
                    eprintln!(
                        "harmony: {change}; restarting {name} (SIGTERM, then SIGKILL after {})",
                        human_age(args.grace)
                    );
                    if let Some(status) = child.stop(args.grace, &name, &mut signals).await? {
                        // A signal for harmony arrived while stopping: end with the program.
                        return Ok(exit_code(status));
                    }
                    versions = now;
                    child = Program::spawn(*command, &name, own_group)?;
                }
            }
        }
    }

    /// One check, bounded by [`CHECK_LIMIT`]; hands the poller back.
    async fn check_once(
        mut poller: Poller,
        ctx: &Context,
        args: &RunArgs,
        versions: Vec<(String, u64)>,
        name: String,
    ) -> (Poller, Checked) {
        let checked = tokio::time::timeout(CHECK_LIMIT, poller.next(ctx, args, &versions, &name))
            .await
            .unwrap_or_else(|_| {
                poller.failed(
                    &versions,
                    &name,
                    &format!("no answer within {}", human_age(CHECK_LIMIT)),
                );
                Checked::Unchanged
            });
        (poller, checked)
    }

    fn keys(versions: &[(String, u64)]) -> String {
        versions
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The running program, and whom its signals go to.
    struct Program {
        child: Child,
        /// Its process group (its own pid) when it leads one.
        group: Option<Pid>,
    }

    impl Program {
        fn spawn(
            mut command: std::process::Command,
            name: &str,
            own_group: bool,
        ) -> anyhow::Result<Self> {
            if own_group {
                command.process_group(0);
            }
            let mut command = tokio::process::Command::from(command);
            command.kill_on_drop(true);
            let child = command.spawn().map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "could not start {name}; check the name and that it is on PATH"
                ))
            })?;
            let group = if own_group { pid_of(&child) } else { None };
            Ok(Self { child, group })
        }

        async fn wait(&mut self) -> std::io::Result<ExitStatus> {
            self.child.wait().await
        }

        /// `signal` to the program's group (or the program alone when it has none).
        fn signal(&self, signal: Signal) {
            // The program may have just ended on its own; wait() reports that.
            match self.group {
                Some(group) => {
                    let _ = kill_process_group(group, signal);
                }
                None => {
                    if let Some(pid) = pid_of(&self.child) {
                        let _ = kill_process(pid, signal);
                    }
                }
            }
        }

        /// Waits for the program, told to stop, to end; SIGKILL to it (and its group) after
        /// `grace`. What is left of its group when it ends gets SIGKILL at `grace` too.
        async fn end(&mut self, grace: Duration, name: &str) -> anyhow::Result<ExitStatus> {
            let deadline = tokio::time::Instant::now() + grace;
            let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
                Ok(status) => status?,
                Err(_) => {
                    eprintln!(
                        "harmony: {name} did not stop within {}; sending SIGKILL",
                        human_age(grace)
                    );
                    self.signal(Signal::KILL);
                    self.child.wait().await?
                }
            };
            if let Some(group) = self.group {
                // Bounded by `grace`: a member that outlives it is killed, not waited for.
                while test_kill_process_group(group).is_ok() {
                    if tokio::time::Instant::now() >= deadline {
                        let _ = kill_process_group(group, Signal::KILL);
                        break;
                    }
                    tokio::time::sleep(GROUP_POLL).await;
                }
            }
            Ok(status)
        }

        /// SIGTERM, then SIGKILL after `grace`. `Some(status)` when harmony itself was told to
        /// stop meanwhile (the program was told too, and has ended).
        async fn stop(
            &mut self,
            grace: Duration,
            name: &str,
            signals: &mut Signals,
        ) -> anyhow::Result<Option<ExitStatus>> {
            self.signal(Signal::TERM);
            tokio::select! {
                status = self.end(grace, name) => {
                    status?;
                    Ok(None)
                }
                signal = signals.next() => {
                    self.signal(signal);
                    Ok(Some(self.end(grace, name).await?))
                }
            }
        }
    }

    /// How often to look whether a stopped program's group has emptied.
    const GROUP_POLL: Duration = Duration::from_millis(50);

    fn pid_of(child: &Child) -> Option<Pid> {
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
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
                    self.failed(versions, name, &crate::render_chain(&e));
                    None
                }
            }
        }

        /// A check that failed (`why`): said once until one passes; sign in again next time.
        fn failed(&mut self, versions: &[(String, u64)], name: &str, why: &str) {
            // The token may be what failed.
            self.team = None;
            if !std::mem::replace(&mut self.failing, true) {
                eprintln!(
                    "warning: cannot check {} for changes ({why}); {name} keeps running and \
                     harmony retries at every interval",
                    keys(versions),
                );
            }
        }

        /// A check, and the documents read again when one changed.
        async fn next(
            &mut self,
            ctx: &Context,
            args: &RunArgs,
            versions: &[(String, u64)],
            name: &str,
        ) -> Checked {
            let Some(change) = self.change(ctx, versions, name).await else {
                return Checked::Unchanged;
            };
            match super::super::run::reread(ctx, args).await {
                Ok((command, now)) => Checked::Changed {
                    change,
                    command: Box::new(command),
                    now,
                },
                Err(e) => {
                    eprintln!(
                        "warning: {change}, but it could not be read: {e:#}; {name} keeps running"
                    );
                    Checked::Unchanged
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
