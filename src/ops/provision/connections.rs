//! Connection files: `<dir>/<env>/<service>-connections.yaml`, what a
//! service needs to reach its schema. Passwords are references to their
//! variables (`${AUTH_APP_PRD_PASSWORD}`) unless asked for, and then the
//! file is readable by its owner only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::secrets::{RoleKind, Secrets, variable};
use super::{Environment, Names, RolePasswords, ServiceName};
use crate::ops::admin::{OperatorError, derive_url};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFile {
    pub service: String,
    pub environment: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub schemas: Vec<String>,
    pub migration: RoleConnection,
    pub app: RoleConnection,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConnection {
    pub user: String,
    /// A PostgreSQL URL; its password is a `${VARIABLE}` reference, the
    /// password itself, or absent (a role without one).
    pub url: String,
}

/// How passwords go into the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordsIn {
    References,
    Values,
}

const PLACEHOLDER: &str = "PASSWORD-REFERENCE";

/// The admin URL's parameters a role's URL carries over; anything else
/// (a password, a pass file, options) stays out of the file, which is
/// readable by everyone when it holds references.
const CARRIED_PARAMETERS: [&str; 2] = ["sslmode", "sslrootcert"];

/// Parameters that are credentials: an admin URL carrying them is refused
/// rather than half-copied.
const CREDENTIAL_PARAMETERS: [&str; 2] = ["password", "sslpassword"];

fn refuse_query_credentials(admin_url: &Url) -> Result<(), OperatorError> {
    if let Some((name, _)) = admin_url
        .query_pairs()
        .find(|(name, _)| CREDENTIAL_PARAMETERS.contains(&name.as_ref()))
    {
        return Err(OperatorError::Invalid(format!(
            "the admin URL carries `{name}` in its query: give the password in the URL's \
             user part or in PGPASSWORD, not as a parameter"
        )));
    }
    Ok(())
}

/// A role's URL: the admin URL's host and port, the role and database, and
/// only the parameters in [`CARRIED_PARAMETERS`].
fn role_url(
    admin_url: &Url,
    user: &str,
    password: Option<&str>,
    database: &str,
) -> Result<Url, OperatorError> {
    let mut url = derive_url(admin_url, user, password, database)?;
    let carried: Vec<(String, String)> = admin_url
        .query_pairs()
        .filter(|(name, _)| CARRIED_PARAMETERS.contains(&name.as_ref()))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url.set_query(None);
    url.set_fragment(None);
    if !carried.is_empty() {
        url.query_pairs_mut().extend_pairs(carried);
    }
    Ok(url)
}

impl ConnectionFile {
    /// The file for `service`'s roles `names` in `env`, on the server of
    /// `admin_url` (host, port and parameters such as `sslmode` are kept).
    pub fn new(
        admin_url: &Url,
        env: Environment,
        service: &ServiceName,
        schemas: &[&str],
        names: &Names,
        passwords: &RolePasswords,
        passwords_in: PasswordsIn,
    ) -> Result<Self, OperatorError> {
        refuse_query_credentials(admin_url)?;
        let role = |kind: RoleKind, user: &str, password: Option<&SecretString>| {
            let connection = |password: Option<&str>| {
                role_url(admin_url, user, password, &names.database).map(|url| url.to_string())
            };
            let url = match (password, passwords_in) {
                (None, _) => connection(None)?,
                (Some(password), PasswordsIn::Values) => {
                    connection(Some(password.expose_secret()))?
                }
                (Some(_), PasswordsIn::References) => connection(Some(PLACEHOLDER))?.replacen(
                    &format!(":{PLACEHOLDER}@"),
                    &format!(":${{{}}}@", variable(service, env, kind)),
                    1,
                ),
            };
            Ok::<_, OperatorError>(RoleConnection {
                user: user.to_owned(),
                url,
            })
        };
        Ok(Self {
            service: service.as_str().to_owned(),
            environment: env.as_str().to_owned(),
            host: admin_url.host_str().unwrap_or("localhost").to_owned(),
            port: admin_url.port().unwrap_or(5432),
            database: names.database.clone(),
            schemas: schemas.iter().map(|s| (*s).to_owned()).collect(),
            migration: role(
                RoleKind::Migration,
                &names.migration_role,
                passwords.migration.as_ref(),
            )?,
            app: role(RoleKind::App, &names.app_role, passwords.app.as_ref())?,
        })
    }

    /// `<dir>/<env>/<service>-connections.yaml`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.environment)
            .join(format!("{}-connections.yaml", self.service))
    }

    /// Writes the file under `dir`, replacing an earlier one; owner-only
    /// when it holds passwords.
    pub fn write(&self, dir: &Path, passwords_in: PasswordsIn) -> Result<PathBuf, OperatorError> {
        let path = self.path(dir);
        let io = |e: std::io::Error| {
            OperatorError::Invalid(format!("cannot write {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let text = serde_yaml_ng::to_string(self).map_err(|e| {
            OperatorError::Invalid(format!("cannot write the connections file: {e}"))
        })?;
        let header = match passwords_in {
            PasswordsIn::References => {
                "# Generated by `portcullis db provision`. Passwords are references to\n\
                 # environment variables, expanded by whoever reads the file.\n"
            }
            PasswordsIn::Values => {
                "# Generated by `portcullis db provision --include-passwords`: this file\n\
                 # holds passwords. Keep it readable by its owner only.\n"
            }
        };
        let mode = match passwords_in {
            PasswordsIn::References => 0o644,
            PasswordsIn::Values => 0o600,
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io)?;
        file.write_all(header.as_bytes()).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        Ok(path)
    }

    pub fn read(path: &Path) -> Result<Self, OperatorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| OperatorError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        serde_yaml_ng::from_str(&text)
            .map_err(|e| OperatorError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The application role's URL, its password reference expanded from
    /// `secrets`.
    pub fn app_url(&self, secrets: &Secrets) -> Result<Url, OperatorError> {
        expand(&self.app.url, secrets)
    }

    /// The migration role's URL, its password reference expanded.
    pub fn migration_url(&self, secrets: &Secrets) -> Result<Url, OperatorError> {
        expand(&self.migration.url, secrets)
    }
}

/// Parses `url`, putting the value of a `${VARIABLE}` password reference in
/// its place.
fn expand(url: &str, secrets: &Secrets) -> Result<Url, OperatorError> {
    let invalid = |problem: String| OperatorError::Invalid(format!("connections file: {problem}"));
    let reference = url.find("${").and_then(|start| {
        let end = start + url[start..].find('}')?;
        Some((start, end, &url[start + 2..end]))
    });
    let Some((start, end, name)) = reference else {
        return Url::parse(url).map_err(|e| invalid(format!("bad URL: {e}")));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(invalid(format!(
            "`${{{name}}}` is not a variable reference"
        )));
    }
    let value = secrets
        .get(name)
        .ok_or_else(|| invalid(format!("set {name}: the URL refers to it")))?;
    let mut parsed = Url::parse(&format!(
        "{}{PLACEHOLDER}{}",
        &url[..start],
        &url[end + 1..]
    ))
    .map_err(|e| invalid(format!("bad URL: {e}")))?;
    if parsed.password() != Some(PLACEHOLDER) {
        return Err(invalid(format!(
            "`${{{name}}}` may only stand for the password"
        )));
    }
    parsed
        .set_password(Some(value.expose_secret()))
        .map_err(|()| invalid("cannot set the password".into()))?;
    Ok(parsed)
}
