//! Which project file applies ([`harmony_config::project`]): `--project-file` /
//! `HARMONY_PROJECT_FILE` when given, else `harmony.toml` found from the working directory up.
//! A project file that cannot be used is a usage error (exit 2) naming the file and the key.
//!
//! Precedence, for every setting it names: flags, then environment variables, then the project
//! file, then the defaults (the last login to the server, the local cluster).

use harmony_config::project::ProjectFile;

use crate::UsageError;
use crate::cli::Global;

/// The project file for this command line, if any.
pub fn load(global: &Global) -> Result<Option<ProjectFile>, UsageError> {
    let usage = |e: harmony_config::project::ProjectError| {
        UsageError(crate::render_chain(&anyhow::Error::new(e)))
    };
    if let Some(path) = global
        .project_file
        .as_deref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        return ProjectFile::load(path).map(Some).map_err(usage);
    }
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(None);
    };
    let home = std::env::home_dir();
    let found = ProjectFile::discover(&cwd, home.as_deref()).map_err(usage)?;
    if let Some(project) = &found {
        tracing::debug!(file = %project.path.display(), "using the project file");
    }
    Ok(found)
}
