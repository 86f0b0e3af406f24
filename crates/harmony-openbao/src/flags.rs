//! The command-line flags for the environments the bootstrap declares, defined once for every
//! binary that bootstraps (`harmony bootstrap` and `example-harmony-sso`), which
//! flatten them into their own arguments.

/// `--environments`, `--access`, `--developer-role`, `--ops-role`: environments and who may
/// read or write each, turned into OpenBao policies and the CEL sign-in role by the bootstrap.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EnvironmentFlags {
    /// Declare these environments (e.g. dev,staging,prod): one overlay per config each, one
    /// policy per environment and access level, and roles from the ID token's claims at
    /// sign-in. Idempotent; name them all again to add one. Without it, everyone signed in
    /// reads and writes the one base, as before.
    #[arg(long, value_name = "ENV,...", value_delimiter = ',')]
    pub environments: Vec<String>,

    /// Override a role's access (repeatable): ROLE=ENV:LEVEL,... with ROLE developer, ops or a
    /// role name, ENV an environment or base, LEVEL read, write or none. Default: developers
    /// read the base and write every environment but prod/production; ops write everything.
    #[arg(long, value_name = "ROLE=ENV:LEVEL,...", requires = "environments")]
    pub access: Vec<String>,

    /// The developers' role: the Zitadel project role and `groups` entry looked for.
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_DEVELOPER_ROLE, requires = "environments")]
    pub developer_role: String,

    /// The operators' role (writes the base and every environment by default).
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_OPS_ROLE, requires = "environments")]
    pub ops_role: String,
}

/// The names of the developers' and operators' roles: Zitadel project roles, and the `groups`
/// entries OpenBao's sign-in role looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleNames {
    /// The developers' role (needed to sign in without environments).
    pub developer: String,
    /// The operators' role.
    pub ops: String,
}

impl Default for RoleNames {
    fn default() -> Self {
        Self {
            developer: crate::DEFAULT_DEVELOPER_ROLE.to_owned(),
            ops: crate::DEFAULT_OPS_ROLE.to_owned(),
        }
    }
}

impl EnvironmentFlags {
    /// The developers' and operators' role names (the defaults unless given).
    pub fn role_names(&self) -> RoleNames {
        let mut names = RoleNames::default();
        if !self.developer_role.is_empty() {
            names.developer = self.developer_role.clone();
        }
        if !self.ops_role.is_empty() {
            names.ops = self.ops_role.clone();
        }
        names
    }

    /// The access table the flags ask for; `None` without `--environments`. The error is a
    /// usage error's text.
    pub fn table(&self) -> Result<Option<crate::AccessTable>, String> {
        if self.environments.is_empty() {
            return Ok(None);
        }
        let developer = if self.developer_role.is_empty() {
            crate::DEFAULT_DEVELOPER_ROLE
        } else {
            &self.developer_role
        };
        let ops = if self.ops_role.is_empty() {
            crate::DEFAULT_OPS_ROLE
        } else {
            &self.ops_role
        };
        crate::AccessTable::new(&self.environments, developer, ops, &self.access)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// `--kv-max-versions`: how much history OpenBao keeps of each config.
#[derive(Debug, Clone, clap::Args)]
pub struct HistoryFlags {
    /// How many versions of each config OpenBao keeps (the team KV mount's max_versions;
    /// `config history`, `diff` and `rollback` reach no further back). Set at every bootstrap
    /// when it differs; OpenBao's own default is 10.
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_KV_MAX_VERSIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub kv_max_versions: u32,
}

impl Default for HistoryFlags {
    fn default() -> Self {
        Self {
            kv_max_versions: crate::DEFAULT_KV_MAX_VERSIONS,
        }
    }
}
