//! `portcullis db provision-service`: another service's schema and roles in
//! the environment's database, as the provisioning guide's "Adding New
//! Services" does by hand; and `db rotate-password`.

use url::Url;

use super::secrets::{RoleKind, check_password};
use super::{
    Confirmation, DECISION_GROUP_ROLE, Environment, Names, PROVISION_LOCK, Report, RolePasswords,
    ServiceName, create_database, database_exists, ensure_login_roles, grant_database,
    password_clause, role_exists,
};
use crate::ops::admin::{AdminConnection, OperatorError, ident};

/// Schema `<service>` owned by its migration role; its application role
/// may use the schema and read and write the tables the migration role
/// creates there (default privileges), and call Portcullis's SQL decision
/// functions (as a member of `portcullis_decision`), and nothing else: no
/// DDL, no other schema's tables. Idempotent; `tst` drops the schema first (after confirmation),
/// the other environments never drop.
pub async fn provision_service(
    admin_url: &Url,
    env: Environment,
    service: &ServiceName,
    names: &Names,
    passwords: &RolePasswords,
    confirmed: Confirmation,
) -> Result<Report, OperatorError> {
    if service.is_portcullis() {
        return Err(OperatorError::Invalid(
            "`auth` is Portcullis itself: use `portcullis db provision`".into(),
        ));
    }
    confirmed.check(env, &format!("schema {}", service.as_str()))?;
    passwords.check(env, service)?;
    let mut admin = AdminConnection::connect(admin_url).await?;
    admin.lock(PROVISION_LOCK).await?;
    // Its policies may ask Portcullis's model (auth.has_capability, …).
    let group = Some(DECISION_GROUP_ROLE);
    let mut report = Report {
        created_roles: ensure_login_roles(&mut admin, names, passwords, group).await?,
        ..Report::default()
    };
    if !database_exists(&mut admin, &names.database).await? {
        create_database(&mut admin, &names.database, None).await?;
        report.created_database = true;
    }
    grant_database(&mut admin, names, false).await?;
    // The schema lives inside the database: the rest runs there.
    let mut admin = AdminConnection::connect_in(admin_url, &names.database).await?;
    let schema = ident(service.as_str());
    let exists = admin
        .query_bool(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS value",
            &[service.as_str()],
        )
        .await?;
    if exists && env == Environment::Tst {
        admin
            .execute(
                "dropping the test schema",
                &format!("DROP SCHEMA {schema} CASCADE"),
            )
            .await?;
        report.dropped = Some(format!("schema {}", service.as_str()));
    }
    if !exists || env == Environment::Tst {
        report.created_schema = true;
    }
    let (migration, app) = (ident(&names.migration_role), ident(&names.app_role));
    // Its migrations write policies that call the decision functions.
    let decision = ident(DECISION_GROUP_ROLE);
    admin
        .execute(
            &format!("laying out schema {}", service.as_str()),
            &format!(
                "GRANT {decision} TO {migration};
                 CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {migration};
                 REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
                 GRANT USAGE ON SCHEMA {schema} TO {app};
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app};
                 ALTER DEFAULT PRIVILEGES FOR ROLE {migration} IN SCHEMA {schema}
                     GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
                 ALTER DEFAULT PRIVILEGES FOR ROLE {migration} IN SCHEMA {schema}
                     GRANT USAGE, SELECT ON SEQUENCES TO {app};"
            ),
        )
        .await?;
    Ok(report)
}

/// Sets one role's password (as a SCRAM verifier); qua and prd refuse a
/// weak one.
pub async fn rotate_password(
    admin_url: &Url,
    env: Environment,
    service: &ServiceName,
    role: RoleKind,
    password: Option<&secrecy::SecretString>,
) -> Result<String, OperatorError> {
    let Some(password) = password else {
        return Err(OperatorError::Invalid(format!(
            "set {} (in the environment or the --env-file) to the new password",
            super::secrets::variable(service, env, role)
        )));
    };
    check_password(env, service, role, Some(password))?;
    let names = Names::for_service(service, env, "unused")?;
    let name = match role {
        RoleKind::Migration => names.migration_role,
        RoleKind::App => names.app_role,
    };
    let mut admin = AdminConnection::connect(admin_url).await?;
    if !role_exists(&mut admin, &name).await? {
        return Err(OperatorError::Invalid(format!(
            "role {name} does not exist: provision {env} first"
        )));
    }
    admin
        .execute(
            &format!("setting the password of {name}"),
            &format!("ALTER ROLE {}{}", ident(&name), password_clause(password)),
        )
        .await?;
    Ok(name)
}
