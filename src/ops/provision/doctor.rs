//! `portcullis db doctor`: checks an environment's layout as the
//! provisioning guide's troubleshooting section would, and says what to do
//! about each failure.

use diesel::migration::MigrationSource;
use url::Url;

use super::{APP_GROUP_ROLE, APP_ROLE_DEFAULTS, Environment, Names, SCHEMAS, database_exists};
use crate::ops::admin::{AdminConnection, OperatorError, redact};
use crate::ops::migrate::{MIGRATIONS, TRACKING_TABLE};

/// One check's outcome.
#[derive(Debug, PartialEq, Eq)]
pub struct DoctorCheck {
    pub name: String,
    /// `None` when it passed; else what is wrong and what to do.
    pub failure: Option<Failure>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Default)]
pub struct Diagnosis {
    pub checks: Vec<DoctorCheck>,
}

impl Diagnosis {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.failure.is_none())
    }

    /// The names of the checks that failed.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.failure.is_some())
            .map(|c| c.name.as_str())
            .collect()
    }

    fn pass(&mut self, name: &str) {
        self.checks.push(DoctorCheck {
            name: name.to_owned(),
            failure: None,
        });
    }

    fn fail(&mut self, name: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.checks.push(DoctorCheck {
            name: name.to_owned(),
            failure: Some(Failure {
                problem: problem.into(),
                fix: fix.into(),
            }),
        });
    }

    fn expect(&mut self, name: &str, problems: Vec<String>, fix: impl Into<String>) {
        if problems.is_empty() {
            self.pass(name);
        } else {
            self.fail(name, problems.join("; "), fix);
        }
    }
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for check in &self.checks {
            match &check.failure {
                None => writeln!(f, "ok    {}", check.name)?,
                Some(failure) => {
                    writeln!(f, "FAIL  {}: {}", check.name, failure.problem)?;
                    writeln!(f, "      fix: {}", failure.fix)?;
                }
            }
        }
        Ok(())
    }
}

/// Examines Portcullis's layout in `env` (`names`), connecting as the
/// superuser of `admin_url`. Stops early only when there is nothing left to
/// examine (no server, no database).
pub async fn diagnose(
    admin_url: &Url,
    env: Environment,
    names: &Names,
) -> Result<Diagnosis, OperatorError> {
    let mut report = Diagnosis::default();
    let mut admin = match AdminConnection::connect(admin_url).await {
        Ok(admin) => {
            report.pass("server reachable");
            admin
        }
        Err(error) => {
            report.fail(
                "server reachable",
                error.to_string(),
                format!(
                    "start PostgreSQL (systemctl status postgresql) or point --admin-url at it (now {})",
                    redact(admin_url)
                ),
            );
            return Ok(report);
        }
    };
    if !database_exists(&mut admin, &names.database).await? {
        report.fail(
            "database exists",
            format!("no database {}", names.database),
            format!("portcullis db provision --env {env}"),
        );
        return Ok(report);
    }
    report.pass("database exists");
    let mut missing_roles = Vec::new();
    for role in [&names.migration_role, &names.app_role] {
        if !super::role_exists(&mut admin, role).await? {
            missing_roles.push(format!("no role {role}"));
        }
    }
    let roles_exist = missing_roles.is_empty();
    report.expect(
        "roles exist",
        missing_roles,
        format!("portcullis db provision --env {env}"),
    );
    if !roles_exist {
        return Ok(report);
    }
    let mut db = AdminConnection::connect_in(admin_url, &names.database).await?;
    check_schemas(&mut report, &mut db, env, names).await?;
    check_app_role(&mut report, &mut db, names).await?;
    check_row_level_security(&mut report, &mut db).await?;
    check_migrations(&mut report, &mut db, env).await?;
    check_isolation(&mut report, &mut db, names).await?;
    Ok(report)
}

async fn check_schemas(
    report: &mut Diagnosis,
    db: &mut AdminConnection,
    env: Environment,
    names: &Names,
) -> Result<(), OperatorError> {
    let mut problems = Vec::new();
    let mut fix = format!("portcullis db migrate --env {env} (the first migration creates them)");
    for schema in SCHEMAS {
        let owner = db
            .query_strings(
                "SELECT nspowner::regrole::text AS value FROM pg_namespace WHERE nspname = $1",
                &[schema],
            )
            .await?;
        match owner.first() {
            None => problems.push(format!("no schema {schema}")),
            Some(owner) if *owner != names.migration_role => {
                problems.push(format!("schema {schema} is owned by {owner}"));
                fix = format!(
                    "as a superuser: REASSIGN OWNED BY {owner} TO {} (in database {})",
                    names.migration_role, names.database
                );
            }
            Some(_) => {}
        }
    }
    report.expect(
        &format!("{} owns the schemas auth and audit", names.migration_role),
        problems,
        fix,
    );
    Ok(())
}

/// No role but a schema's owner may create in a schema on the application
/// role's search path: a function planted there could be called in place
/// of PostgreSQL's own, as the application role.
async fn check_search_path(
    report: &mut Diagnosis,
    db: &mut AdminConnection,
    app: &str,
    defaults: &[String],
) -> Result<(), OperatorError> {
    let path = defaults
        .iter()
        .find_map(|d| d.strip_prefix("search_path="))
        .unwrap_or("\"$user\", public");
    let schemas: Vec<String> = path
        .split(',')
        .map(|name| name.trim().trim_matches('"'))
        .map(|name| if name == "$user" { app } else { name })
        .map(|name| name.replace(['{', '}', ',', '"', '\\'], ""))
        .collect();
    let writable = db
        .query_strings(
            "SELECT format('%s may CREATE in schema %s', \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, \
                    n.nspname) AS value \
               FROM pg_namespace n, \
                    aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a \
              WHERE n.nspname = ANY ($1::text[]) AND a.privilege_type = 'CREATE' \
                AND a.grantee <> n.nspowner ORDER BY 1",
            &[&format!("{{{}}}", schemas.join(","))],
        )
        .await?;
    report.expect(
        &format!(
            "no one but their owners may create in the schemas on {app}'s search path ({path})"
        ),
        writable,
        "REVOKE CREATE ON SCHEMA … FROM … (or give the role the search path pg_catalog, pg_temp)"
            .to_owned(),
    );
    Ok(())
}

async fn check_app_role(
    report: &mut Diagnosis,
    db: &mut AdminConnection,
    names: &Names,
) -> Result<(), OperatorError> {
    let app = names.app_role.as_str();
    let powers = db
        .query_strings(
            "SELECT concat_ws(', ', CASE WHEN rolsuper THEN 'SUPERUSER' END,
                    CASE WHEN rolbypassrls THEN 'BYPASSRLS' END,
                    CASE WHEN rolcreaterole THEN 'CREATEROLE' END,
                    CASE WHEN rolcreatedb THEN 'CREATEDB' END) AS value
               FROM pg_roles WHERE rolname = $1",
            &[app],
        )
        .await?;
    let powers: Vec<String> = powers.into_iter().filter(|p| !p.is_empty()).collect();
    report.expect(
        &format!("{app} is not a superuser and does not bypass row-level security"),
        powers.iter().map(|p| format!("{app} has {p}")).collect(),
        format!("ALTER ROLE {app} NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB"),
    );
    let owned = db
        .query_strings(
            "SELECT format('%s %s', kind, name) AS value FROM (
                 SELECT 'database' AS kind, datname::text AS name FROM pg_database
                  WHERE datdba = to_regrole($1)
                 UNION ALL SELECT 'schema', nspname::text FROM pg_namespace
                  WHERE nspowner = to_regrole($1)
                 UNION ALL SELECT 'relation', oid::regclass::text FROM pg_class
                  WHERE relowner = to_regrole($1)
                 UNION ALL SELECT 'function', oid::regprocedure::text FROM pg_proc
                  WHERE proowner = to_regrole($1)) owned ORDER BY 1",
            &[app],
        )
        .await?;
    report.expect(
        &format!("{app} owns nothing"),
        owned.into_iter().map(|o| format!("owns {o}")).collect(),
        format!(
            "as a superuser in {}: REASSIGN OWNED BY {app} TO {}",
            names.database, names.migration_role
        ),
    );
    let ddl = db
        .query_strings(
            "SELECT format('may CREATE in %s', target) AS value FROM (
                 SELECT 'database ' || $2 AS target WHERE has_database_privilege($1, $2, 'CREATE')
                 UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
                  WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
                    AND has_schema_privilege($1, oid, 'CREATE')) found ORDER BY 1",
            &[app, &names.database],
        )
        .await?;
    report.expect(
        &format!("{app} has no DDL"),
        ddl,
        format!("REVOKE CREATE ON DATABASE / SCHEMA … FROM {app} (and from PUBLIC)"),
    );
    let defaults = db
        .query_strings(
            "SELECT unnest(setconfig) AS value FROM pg_db_role_setting
              WHERE setrole = to_regrole($1) AND setdatabase = 0",
            &[app],
        )
        .await?;
    let wrong: Vec<String> = APP_ROLE_DEFAULTS
        .iter()
        .map(|(setting, value)| format!("{setting}={value}"))
        .filter(|wanted| !defaults.contains(wanted))
        .map(|wanted| format!("{app} lacks the default {wanted}"))
        .collect();
    report.expect(
        &format!("{app} has the defaults its checks are planned and timed by"),
        wrong,
        APP_ROLE_DEFAULTS
            .iter()
            .map(|(setting, value)| {
                format!(
                    "ALTER ROLE {app} SET {setting} = {}",
                    super::setting_value(setting, value)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    check_search_path(report, db, app, &defaults).await?;
    let mut missing = Vec::new();
    let member = db
        .query_bool(
            "SELECT pg_has_role($1, $2, 'MEMBER') AS value",
            &[app, APP_GROUP_ROLE],
        )
        .await?;
    if !member {
        missing.push(format!("not a member of {APP_GROUP_ROLE}"));
    }
    for schema in SCHEMAS {
        let usage = db
            .query_bool(
                "SELECT coalesce(has_schema_privilege($1, to_regnamespace($2), 'USAGE'), false) AS value",
                &[app, schema],
            )
            .await?;
        if !usage {
            missing.push(format!("no USAGE on schema {schema}"));
        }
    }
    let dml = db
        .query_bool(
            "SELECT coalesce(has_table_privilege($1, to_regclass('auth.users'),
                     'SELECT, INSERT, UPDATE, DELETE'), false) AS value",
            &[app],
        )
        .await?;
    if !dml {
        missing.push("no DML on auth.users".into());
    }
    report.expect(
        &format!("{app} has USAGE and DML"),
        missing,
        format!("GRANT {APP_GROUP_ROLE} TO {app}, then portcullis db migrate (the migrations grant to {APP_GROUP_ROLE})"),
    );
    Ok(())
}

async fn check_row_level_security(
    report: &mut Diagnosis,
    db: &mut AdminConnection,
) -> Result<(), OperatorError> {
    let unfenced = db
        .query_strings(
            "SELECT format('%s.%s%s%s', n.nspname, c.relname,
                    CASE WHEN NOT c.relrowsecurity THEN ' (not enabled)' ELSE '' END,
                    CASE WHEN NOT c.relforcerowsecurity THEN ' (not forced)' ELSE '' END) AS value
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('auth', 'audit') AND c.relkind IN ('r', 'p')
                AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
              ORDER BY 1",
            &[],
        )
        .await?;
    report.expect(
        "every table has row-level security enabled and forced",
        unfenced,
        "ALTER TABLE … ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY (every migration does; a table made by hand does not belong here)",
    );
    Ok(())
}

async fn check_migrations(
    report: &mut Diagnosis,
    db: &mut AdminConnection,
    env: Environment,
) -> Result<(), OperatorError> {
    let known: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| OperatorError::Migration(e.to_string()))?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let tracked = db
        .query_bool(
            "SELECT to_regclass($1) IS NOT NULL AS value",
            &[TRACKING_TABLE],
        )
        .await?;
    let applied = if tracked {
        db.query_strings(
            &format!("SELECT version::text AS value FROM {TRACKING_TABLE}"),
            &[],
        )
        .await?
    } else {
        Vec::new()
    };
    let pending: Vec<&String> = known.iter().filter(|v| !applied.contains(v)).collect();
    let unknown: Vec<&String> = applied.iter().filter(|v| !known.contains(v)).collect();
    let mut problems = Vec::new();
    if !pending.is_empty() {
        problems.push(format!("{} pending (first {})", pending.len(), pending[0]));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "applied by a newer release: {}",
            unknown
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    report.expect(
        "migrations are current",
        problems,
        format!("portcullis db migrate --env {env} (with the release that matches the database)"),
    );
    let in_public = db
        .query_bool(
            "SELECT to_regclass('public.__diesel_schema_migrations') IS NOT NULL AS value",
            &[],
        )
        .await?;
    if in_public {
        report.fail(
            "migration tracking lives in auth",
            "public.__diesel_schema_migrations exists",
            format!("portcullis db migrate --env {env} moves it to {TRACKING_TABLE}"),
        );
    } else {
        report.pass("migration tracking lives in auth");
    }
    Ok(())
}

async fn check_isolation(
    report: &mut Diagnosis,
    db: &mut AdminConnection,
    names: &Names,
) -> Result<(), OperatorError> {
    let app = names.app_role.as_str();
    let visible = db
        .query_strings(
            "SELECT nspname::text AS value FROM pg_namespace
              WHERE nspname NOT IN ('auth', 'audit', 'public', 'information_schema')
                AND nspname NOT LIKE 'pg\\_%'
                AND has_schema_privilege($1, oid, 'USAGE')
              ORDER BY 1",
            &[app],
        )
        .await?;
    let fix = format!(
        "REVOKE USAGE ON SCHEMA {} FROM {app}, PUBLIC",
        visible.first().map_or("<schema>", String::as_str)
    );
    report.expect(
        &format!("{app} cannot use another service's schema"),
        visible
            .into_iter()
            .map(|s| format!("may use schema {s}"))
            .collect(),
        fix,
    );
    Ok(())
}
