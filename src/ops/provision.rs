//! `portcullis db provision`: roles and database for one environment.
//!
//! Three roles are involved:
//! - `portcullis_app`, a NOLOGIN group role that the migrations grant DML to;
//! - `<prefix>_owner`, which owns the database and schemas and runs migrations;
//! - `<prefix>_app`, the login role the service connects as: a member of
//!   `portcullis_app`, not superuser, not BYPASSRLS, owning nothing.

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::admin::{AdminConnection, AdminError, derive_url, ident, literal};

/// The group role the migrations grant the application's privileges to.
pub const APP_GROUP_ROLE: &str = "portcullis_app";

/// Key of the advisory lock that serialises provisioning on one cluster.
const PROVISION_LOCK: i64 = 0x706f_7274_0001;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    /// Tests: drops and recreates the database.
    Tst,
    /// A developer's machine: creates what is missing, never drops.
    Dev,
    /// Production: creates what is missing, never drops; passwords required.
    Prd,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tst => "tst",
            Self::Dev => "dev",
            Self::Prd => "prd",
        }
    }
}

/// Database and role names, validated as plain lower-case identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub database: String,
    pub owner_role: String,
    pub app_role: String,
}

impl Names {
    pub fn for_environment(env: Environment) -> Self {
        let prefix = format!("portcullis_{}", env.as_str());
        Self {
            database: prefix.clone(),
            owner_role: format!("{prefix}_owner"),
            app_role: format!("{prefix}_app"),
        }
    }

    pub fn new(database: &str, owner_role: &str, app_role: &str) -> Result<Self, AdminError> {
        for (what, name) in [
            ("database", database),
            ("owner role", owner_role),
            ("application role", app_role),
        ] {
            let valid = name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(AdminError::Invalid(format!(
                    "{what} name `{name}` must be 1-63 characters of a-z, 0-9 and _, not starting with a digit"
                )));
            }
        }
        if owner_role == app_role || owner_role == APP_GROUP_ROLE || app_role == APP_GROUP_ROLE {
            return Err(AdminError::Invalid(format!(
                "the owner role, the application role and `{APP_GROUP_ROLE}` must be three different roles"
            )));
        }
        Ok(Self {
            database: database.to_owned(),
            owner_role: owner_role.to_owned(),
            app_role: app_role.to_owned(),
        })
    }
}

/// Passwords for the two login roles. `None`: the role gets no password and
/// can log in only where the server trusts the connection (a local dev box).
#[derive(Default)]
pub struct Passwords {
    pub owner: Option<SecretString>,
    pub app: Option<SecretString>,
}

impl Passwords {
    /// Reads PORTCULLIS_OWNER_PASSWORD and PORTCULLIS_APP_PASSWORD; empty
    /// counts as unset.
    pub fn from_env() -> Self {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .map(SecretString::from)
        };
        Self {
            owner: read("PORTCULLIS_OWNER_PASSWORD"),
            app: read("PORTCULLIS_APP_PASSWORD"),
        }
    }
}

/// What provisioning did, for the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub created_roles: Vec<String>,
    pub dropped_database: bool,
    pub created_database: bool,
}

/// Creates roles and database on the cluster `admin_url` points at (a
/// superuser connection). `tst` drops and recreates the database; `dev` and
/// `prd` create only what is missing.
pub async fn provision(
    admin_url: &Url,
    env: Environment,
    names: &Names,
    passwords: &Passwords,
) -> Result<Report, AdminError> {
    if env == Environment::Prd && (passwords.owner.is_none() || passwords.app.is_none()) {
        return Err(AdminError::Invalid(
            "prd needs PORTCULLIS_OWNER_PASSWORD and PORTCULLIS_APP_PASSWORD".into(),
        ));
    }
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
        report.dropped_database = true;
    }
    if !exists || env == Environment::Tst {
        create_database(&mut admin, names, None).await?;
        report.created_database = true;
    }
    Ok(report)
}

/// Creates the group role and both login roles if missing, makes the
/// application role a member of the group, and refuses roles that could
/// bypass row-level security. Returns the roles it created.
pub async fn ensure_roles(
    admin: &mut AdminConnection,
    names: &Names,
    passwords: &Passwords,
) -> Result<Vec<String>, AdminError> {
    let mut created = Vec::new();
    const SAFE: &str = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION";
    if !role_exists(admin, APP_GROUP_ROLE).await? {
        admin
            .execute(
                "creating the application group role",
                &format!("CREATE ROLE {} NOLOGIN {SAFE}", ident(APP_GROUP_ROLE)),
            )
            .await?;
        created.push(APP_GROUP_ROLE.to_owned());
    }
    for (role, password, membership) in [
        (&names.owner_role, passwords.owner.as_ref(), ""),
        (&names.app_role, passwords.app.as_ref(), APP_GROUP_ROLE),
    ] {
        if !role_exists(admin, role).await? {
            // Send a SCRAM verifier, never the cleartext, so the password
            // cannot end up in the server's statement log.
            let password = password
                .map(|p| {
                    let verifier =
                        postgres_protocol::password::scram_sha_256(p.expose_secret().as_bytes());
                    format!(" PASSWORD {}", literal(&verifier))
                })
                .unwrap_or_default();
            let in_role = if membership.is_empty() {
                String::new()
            } else {
                format!(" IN ROLE {}", ident(membership))
            };
            admin
                .execute(
                    &format!("creating role {role}"),
                    &format!(
                        "CREATE ROLE {} LOGIN {SAFE}{password}{in_role}",
                        ident(role)
                    ),
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
            return Err(AdminError::Invalid(format!(
                "role {role} is a superuser or bypasses row-level security; refusing to use it"
            )));
        }
    }
    let is_member = admin
        .query_bool(
            "SELECT pg_has_role($1, $2, 'MEMBER') AS value",
            &[&names.app_role, APP_GROUP_ROLE],
        )
        .await?;
    if !is_member {
        admin
            .execute(
                "granting the application privileges",
                &format!(
                    "GRANT {} TO {}",
                    ident(APP_GROUP_ROLE),
                    ident(&names.app_role)
                ),
            )
            .await?;
    }
    Ok(created)
}

/// Creates the database owned by the owner role (from `template`, or empty)
/// and lets only our two login roles connect to it.
pub async fn create_database(
    admin: &mut AdminConnection,
    names: &Names,
    template: Option<&str>,
) -> Result<(), AdminError> {
    let template = ident(template.unwrap_or("template0"));
    admin
        .execute(
            &format!("creating database {}", names.database),
            &format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE {template} ENCODING 'UTF8'",
                ident(&names.database),
                ident(&names.owner_role)
            ),
        )
        .await?;
    admin
        .execute(
            "restricting database access",
            &format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; \
                 GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {owner}, {app}",
                db = ident(&names.database),
                owner = ident(&names.owner_role),
                app = ident(&names.app_role),
            ),
        )
        .await
}

pub async fn database_exists(admin: &mut AdminConnection, name: &str) -> Result<bool, AdminError> {
    admin
        .query_bool(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS value",
            &[name],
        )
        .await
}

async fn role_exists(admin: &mut AdminConnection, name: &str) -> Result<bool, AdminError> {
    admin
        .query_bool(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS value",
            &[name],
        )
        .await
}

/// URLs for the owner and application roles on the same server as `admin_url`.
pub fn role_urls(
    admin_url: &Url,
    names: &Names,
    passwords: &Passwords,
) -> Result<(Url, Url), AdminError> {
    let owner = derive_url(
        admin_url,
        &names.owner_role,
        passwords.owner.as_ref().map(|p| p.expose_secret()),
        &names.database,
    )?;
    let app = derive_url(
        admin_url,
        &names.app_role,
        passwords.app.as_ref().map(|p| p.expose_secret()),
        &names.database,
    )?;
    Ok((owner, app))
}
