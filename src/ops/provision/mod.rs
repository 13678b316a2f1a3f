//! `portcullis db provision`: the platform's layout (its provisioning
//! guide): one database per environment shared by the services, one schema
//! per service, and two login roles per service:
//! - `<service>_migration_<env>_user` owns the service's schemas and runs its
//!   migrations;
//! - `<service>_app_<env>_user` is what the service connects as: DML only,
//!   not superuser, not BYPASSRLS, owning nothing.
//!
//! Portcullis is the service `auth` (schemas `auth` and `audit`); its
//! application role gets its privileges through the NOLOGIN group role
//! `portcullis_app`, which the migrations grant to. Other services are
//! provisioned by [`service::provision_service`].

pub mod connections;
pub mod decision_roles;
pub mod doctor;
pub mod secrets;
pub mod service;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::admin::{AdminConnection, OperatorError, derive_url, ident, literal};

pub use secrets::{RolePasswords, Secrets};

/// The group role the migrations grant the application's privileges to.
pub const APP_GROUP_ROLE: &str = "portcullis_app";
/// The group role allowed to call the SQL decision API (`auth.has_capability`
/// and the rest) from other services' policies; `provision-service` grants
/// it to each service's application role.
pub const DECISION_GROUP_ROLE: &str = "portcullis_decision";
/// Portcullis's service name: its schema, and the prefix of its roles.
pub const SERVICE: &str = "auth";
/// The schemas Portcullis's migrations create and its migration role owns.
pub const SCHEMAS: [&str; 2] = ["auth", "audit"];
/// The platform name in the default database name `<platform>-<env>`.
pub const DEFAULT_PLATFORM: &str = "portcullis";

/// Key of the advisory lock that serialises provisioning on one cluster.
const PROVISION_LOCK: i64 = 0x706f_7274_0001;
/// The application role's defaults. A check runs as one statement in its
/// own implicit transaction (`Db::read_statement`), which is planned and
/// timed before anything it sets could apply: its plan cache mode and its
/// timeout are the role's. Every other transaction sets both itself. No
/// JIT compilation: a request's statements are short, and compiling one
/// costs hundreds of milliseconds. A search path of PostgreSQL's own
/// catalog alone: every object of ours is written with its schema, so no
/// function planted in a schema on the path can be called in its place.
pub const APP_ROLE_DEFAULTS: [(&str, &str); 4] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("statement_timeout", "5s"),
    ("jit", "off"),
    ("search_path", "pg_catalog, pg_temp"),
];

/// A default's value as `ALTER ROLE … SET` takes it: a list setting's
/// names bare (one quoted string would be one schema named by the whole
/// list), any other value quoted.
pub fn setting_value(setting: &str, value: &str) -> String {
    if setting == "search_path" {
        value.to_owned()
    } else {
        literal(value)
    }
}

/// Attributes every login role we create has.
const SAFE: &str = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    /// Tests: drops and recreates, after confirmation.
    Tst,
    /// Development: creates what is missing, never drops.
    Dev,
    /// Quality assurance: as prd.
    Qua,
    /// Production: creates what is missing, never drops; strong passwords
    /// and typing the environment's name required.
    Prd,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tst => "tst",
            Self::Dev => "dev",
            Self::Qua => "qua",
            Self::Prd => "prd",
        }
    }

    /// qua and prd: passwords required and strong, the name typed to confirm.
    pub fn is_guarded(self) -> bool {
        matches!(self, Self::Qua | Self::Prd)
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator confirmed: dropping (tst), and the environment's name
/// (qua, prd).
#[derive(Clone, Copy, Debug, Default)]
pub struct Confirmation {
    pub drop: bool,
    pub environment: Option<Environment>,
}

impl Confirmation {
    /// Refuses, changing nothing, what was not confirmed.
    pub fn check(self, env: Environment, what: &str) -> Result<(), OperatorError> {
        if env == Environment::Tst && !self.drop {
            return Err(OperatorError::Invalid(format!(
                "tst drops and recreates {what}; nothing changed: confirm with --yes"
            )));
        }
        if env.is_guarded() && self.environment != Some(env) {
            return Err(OperatorError::Invalid(format!(
                "{env} needs the environment's name confirmed; nothing changed: \
                 pass --confirm-env {env} (or type {env} at the prompt)"
            )));
        }
        Ok(())
    }
}

/// A service's name: its schema and the prefix of its roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(raw: &str) -> Result<Self, OperatorError> {
        let valid = (1..=24).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(OperatorError::Invalid(format!(
                "service `{raw}` must be 1-24 characters of a-z, 0-9 and _, starting with a letter"
            )));
        }
        if matches!(raw, "public" | "audit" | "information_schema") || raw.starts_with("pg_") {
            return Err(OperatorError::Invalid(format!(
                "`{raw}` is a schema name the platform or PostgreSQL reserves"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_portcullis(&self) -> bool {
        self.0 == SERVICE
    }
}

/// The database of an environment and a service's two login roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub database: String,
    pub migration_role: String,
    pub app_role: String,
}

impl Names {
    /// The platform's names: `<service>_migration_<env>_user` and
    /// `<service>_app_<env>_user` in `database`.
    pub fn for_service(
        service: &ServiceName,
        env: Environment,
        database: &str,
    ) -> Result<Self, OperatorError> {
        Self::new(
            database,
            &format!("{}_migration_{env}_user", service.as_str()),
            &format!("{}_app_{env}_user", service.as_str()),
        )
    }

    /// Portcullis's names in the environment's default database.
    pub fn for_environment(env: Environment) -> Self {
        let service = ServiceName(SERVICE.to_owned());
        Self::for_service(&service, env, &default_database(DEFAULT_PLATFORM, env))
            .unwrap_or_else(|_| unreachable!("the default names are valid"))
    }

    /// Any names (tests and the benchmark use their own).
    pub fn new(
        database: &str,
        migration_role: &str,
        app_role: &str,
    ) -> Result<Self, OperatorError> {
        check_name("database", database, true)?;
        for (what, name) in [
            ("migration role", migration_role),
            ("application role", app_role),
        ] {
            check_name(what, name, false)?;
        }
        if migration_role == app_role
            || migration_role == APP_GROUP_ROLE
            || app_role == APP_GROUP_ROLE
        {
            return Err(OperatorError::Invalid(format!(
                "the migration role, the application role and `{APP_GROUP_ROLE}` must be three different roles"
            )));
        }
        Ok(Self {
            database: database.to_owned(),
            migration_role: migration_role.to_owned(),
            app_role: app_role.to_owned(),
        })
    }
}

/// The seed's pattern: `<platform>-<env>`.
pub fn default_database(platform: &str, env: Environment) -> String {
    format!("{platform}-{env}")
}

/// Lower-case identifiers (and `-` in database names, as in the seed's
/// `go-labs-prd`): nothing that needs more than plain double quotes.
fn check_name(what: &str, name: &str, dashes: bool) -> Result<(), OperatorError> {
    let valid = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (dashes && c == '-')
        });
    if valid {
        Ok(())
    } else {
        let allowed = if dashes {
            "a-z, 0-9, _ and -"
        } else {
            "a-z, 0-9 and _"
        };
        Err(OperatorError::Invalid(format!(
            "{what} name `{name}` must be 1-63 characters of {allowed}, not starting with a digit"
        )))
    }
}

/// What provisioning did, for the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub created_roles: Vec<String>,
    pub dropped: Option<String>,
    pub created_database: bool,
    pub created_schema: bool,
}

/// Provisions Portcullis in `env` on the cluster `admin_url` points at (a
/// superuser): its roles, and the environment's database if missing. `tst`
/// drops and recreates the database; the others never drop. The schemas
/// `auth` and `audit` are made by the first migration, as the migration
/// role, which owns them (it may create schemas in the database for that).
pub async fn provision(
    admin_url: &Url,
    env: Environment,
    names: &Names,
    passwords: &RolePasswords,
    confirmed: Confirmation,
) -> Result<Report, OperatorError> {
    confirmed.check(env, &format!("database {}", names.database))?;
    passwords.check(env, &ServiceName(SERVICE.to_owned()))?;
    let mut admin = AdminConnection::connect(admin_url).await?;
    admin.lock(PROVISION_LOCK).await?;
    let mut report = Report {
        created_roles: ensure_roles(&mut admin, names, passwords).await?,
        ..Report::default()
    };
    let exists = database_exists(&mut admin, &names.database).await?;
    if exists && env == Environment::Tst {
        admin
            .execute(
                "dropping the test database",
                &format!("DROP DATABASE {} WITH (FORCE)", ident(&names.database)),
            )
            .await?;
        report.dropped = Some(format!("database {}", names.database));
    }
    if !exists || env == Environment::Tst {
        create_database(&mut admin, &names.database, None).await?;
        report.created_database = true;
    }
    grant_database(&mut admin, names, true).await?;
    Ok(report)
}

/// Portcullis's roles: the group role and both login roles, the
/// application role in the group. Returns the roles it created.
pub async fn ensure_roles(
    admin: &mut AdminConnection,
    names: &Names,
    passwords: &RolePasswords,
) -> Result<Vec<String>, OperatorError> {
    let mut created = ensure_group_roles(admin).await?;
    created.extend(ensure_login_roles(admin, names, passwords, Some(APP_GROUP_ROLE)).await?);
    // Set every time, so provisioning again brings an older role up to date.
    for (setting, value) in APP_ROLE_DEFAULTS {
        admin
            .execute(
                &format!("setting {setting} for {}", names.app_role),
                &format!(
                    "ALTER ROLE {} SET {setting} = {}",
                    ident(&names.app_role),
                    setting_value(setting, value)
                ),
            )
            .await?;
    }
    Ok(created)
}

/// Creates the NOLOGIN group roles the migrations grant to, if missing;
/// returns those it created.
async fn ensure_group_roles(admin: &mut AdminConnection) -> Result<Vec<String>, OperatorError> {
    let mut created = Vec::new();
    for group in [APP_GROUP_ROLE, DECISION_GROUP_ROLE] {
        if !role_exists(admin, group).await? {
            admin
                .execute(
                    &format!("creating the group role {group}"),
                    &format!("CREATE ROLE {} NOLOGIN {SAFE}", ident(group)),
                )
                .await?;
            created.push(group.to_owned());
        }
    }
    Ok(created)
}

/// Creates the migration and application roles if missing (the
/// application role in `group`, if any), and refuses roles that could
/// bypass row-level security. Returns the roles it created.
pub async fn ensure_login_roles(
    admin: &mut AdminConnection,
    names: &Names,
    passwords: &RolePasswords,
    group: Option<&str>,
) -> Result<Vec<String>, OperatorError> {
    let mut created = Vec::new();
    for (role, password) in [
        (&names.migration_role, passwords.migration.as_ref()),
        (&names.app_role, passwords.app.as_ref()),
    ] {
        if !role_exists(admin, role).await? {
            let password = password.map(password_clause).unwrap_or_default();
            admin
                .execute(
                    &format!("creating role {role}"),
                    &format!("CREATE ROLE {} LOGIN {SAFE}{password}", ident(role)),
                )
                .await?;
            created.push(role.clone());
        }
        let safe = admin
            .query_bool(
                "SELECT NOT (rolsuper OR rolbypassrls) AS value FROM pg_roles WHERE rolname = $1",
                &[role],
            )
            .await?;
        if !safe {
            return Err(OperatorError::Invalid(format!(
                "role {role} is a superuser or bypasses row-level security; refusing to use it"
            )));
        }
    }
    if let Some(group) = group {
        let is_member = admin
            .query_bool(
                "SELECT pg_has_role($1, $2, 'MEMBER') AS value",
                &[&names.app_role, group],
            )
            .await?;
        if !is_member {
            admin
                .execute(
                    "granting the application privileges",
                    &format!("GRANT {} TO {}", ident(group), ident(&names.app_role)),
                )
                .await?;
        }
    }
    Ok(created)
}

/// ` PASSWORD '<verifier>'`: a SCRAM verifier, never the cleartext, so the
/// password cannot end up in the server's statement log.
pub(super) fn password_clause(password: &SecretString) -> String {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
    format!(" PASSWORD {}", literal(&verifier))
}

/// Creates a database (from `template`, or empty), owned by the connected
/// administrator: it is the environment's, shared by the services. Nobody
/// but the roles granted below may connect.
pub async fn create_database(
    admin: &mut AdminConnection,
    database: &str,
    template: Option<&str>,
) -> Result<(), OperatorError> {
    let (db, template) = (ident(database), ident(template.unwrap_or("template0")));
    // CREATE DATABASE runs alone: a multi-statement batch is a transaction.
    admin
        .execute(
            &format!("creating database {database}"),
            &format!("CREATE DATABASE {db} TEMPLATE {template} ENCODING 'UTF8'"),
        )
        .await?;
    admin
        .execute(
            "restricting database access",
            &format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC"),
        )
        .await
}

/// Lets the service's two roles connect; the migration role may also
/// create schemas when `create_schemas` (Portcullis's first migration makes
/// `auth` and `audit`).
pub async fn grant_database(
    admin: &mut AdminConnection,
    names: &Names,
    create_schemas: bool,
) -> Result<(), OperatorError> {
    let (db, migration, app) = (
        ident(&names.database),
        ident(&names.migration_role),
        ident(&names.app_role),
    );
    let create = if create_schemas {
        format!("; GRANT CREATE ON DATABASE {db} TO {migration}")
    } else {
        String::new()
    };
    admin
        .execute(
            "granting access to the database",
            &format!("GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {migration}, {app}{create}"),
        )
        .await
}

pub async fn database_exists(
    admin: &mut AdminConnection,
    name: &str,
) -> Result<bool, OperatorError> {
    admin
        .query_bool(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS value",
            &[name],
        )
        .await
}

pub(super) async fn role_exists(
    admin: &mut AdminConnection,
    name: &str,
) -> Result<bool, OperatorError> {
    admin
        .query_bool(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS value",
            &[name],
        )
        .await
}

/// URLs for the migration and application roles on the same server as
/// `admin_url`.
pub fn role_urls(
    admin_url: &Url,
    names: &Names,
    passwords: &RolePasswords,
) -> Result<(Url, Url), OperatorError> {
    let migration = derive_url(
        admin_url,
        &names.migration_role,
        passwords.migration.as_ref().map(|p| p.expose_secret()),
        &names.database,
    )?;
    let app = derive_url(
        admin_url,
        &names.app_role,
        passwords.app.as_ref().map(|p| p.expose_secret()),
        &names.database,
    )?;
    Ok((migration, app))
}
