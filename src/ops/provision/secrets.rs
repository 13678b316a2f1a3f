//! Role passwords: from the process environment or an env file (the
//! platform's `.env.<env>`), named `<SERVICE>_<MIGRATION|APP>_<ENV>_PASSWORD`.
//! Any character is allowed (nothing goes through a shell); they are never
//! printed, and reach PostgreSQL only as SCRAM verifiers.

use std::collections::HashMap;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::{Environment, ServiceName};
use crate::ops::admin::OperatorError;

/// Shortest password qua and prd accept.
pub const MIN_GUARDED_PASSWORD_CHARS: usize = 16;

/// Which of a service's two roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleKind {
    Migration,
    App,
}

impl RoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Migration => "migration",
            Self::App => "app",
        }
    }
}

/// The variable holding a role's password, e.g. `AUTH_APP_PRD_PASSWORD`.
pub fn variable(service: &ServiceName, env: Environment, role: RoleKind) -> String {
    format!(
        "{}_{}_{}_PASSWORD",
        service.as_str(),
        role.as_str(),
        env.as_str()
    )
    .to_uppercase()
}

/// The variables an env file and the process environment hold; the
/// process environment wins.
#[derive(Default)]
pub struct Secrets {
    values: HashMap<String, SecretString>,
}

impl Secrets {
    /// The process environment, over the env file if one is given.
    pub fn load(env_file: Option<&Path>) -> Result<Self, OperatorError> {
        let mut values = HashMap::new();
        if let Some(path) = env_file {
            let entries = dotenvy::from_path_iter(path).map_err(|e| {
                OperatorError::Invalid(format!("cannot read env file {}: {e}", path.display()))
            })?;
            for entry in entries {
                let (name, value) = entry.map_err(|e| {
                    OperatorError::Invalid(format!("env file {}: {e}", path.display()))
                })?;
                values.insert(name, SecretString::from(value));
            }
        }
        for (name, value) in std::env::vars_os() {
            if let (Ok(name), Ok(value)) = (name.into_string(), value.into_string())
                && name.ends_with("_PASSWORD")
            {
                values.insert(name, SecretString::from(value));
            }
        }
        Ok(Self { values })
    }

    /// Exactly these variables (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretString::from(v.to_owned())))
                .collect(),
        }
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.values
            .get(name)
            .filter(|value| !value.expose_secret().is_empty())
    }

    /// The passwords of `service`'s roles in `env`.
    pub fn passwords(&self, service: &ServiceName, env: Environment) -> RolePasswords {
        let read = |role| self.get(&variable(service, env, role)).cloned();
        RolePasswords {
            migration: read(RoleKind::Migration),
            app: read(RoleKind::App),
        }
    }
}

/// Passwords for a service's two login roles. `None`: the role gets no
/// password and can log in only where the server trusts the connection (a
/// local dev box).
#[derive(Clone, Default)]
pub struct RolePasswords {
    pub migration: Option<SecretString>,
    pub app: Option<SecretString>,
}

impl RolePasswords {
    /// qua and prd need both passwords, each of at least 16 characters.
    pub fn check(&self, env: Environment, service: &ServiceName) -> Result<(), OperatorError> {
        for (role, password) in [
            (RoleKind::Migration, &self.migration),
            (RoleKind::App, &self.app),
        ] {
            check_password(env, service, role, password.as_ref())?;
        }
        Ok(())
    }
}

/// One role's password, as `env` requires it.
pub fn check_password(
    env: Environment,
    service: &ServiceName,
    role: RoleKind,
    password: Option<&SecretString>,
) -> Result<(), OperatorError> {
    if !env.is_guarded() {
        return Ok(());
    }
    let name = variable(service, env, role);
    match password {
        None => Err(OperatorError::Invalid(format!(
            "{env} needs {name} (in the environment or the --env-file); nothing changed"
        ))),
        Some(p) if p.expose_secret().chars().count() < MIN_GUARDED_PASSWORD_CHARS => {
            Err(OperatorError::Invalid(format!(
                "{name} is shorter than {MIN_GUARDED_PASSWORD_CHARS} characters, too weak for {env}; nothing changed"
            )))
        }
        Some(_) => Ok(()),
    }
}
