//! Provisioning as the platform does it: what each environment may create
//! and drop, other services' schemas, connection files, password rotation
//! and the doctor. Every test makes roles and a database of its own and
//! drops them at the end.

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use portcullis::ops::admin::{AdminConnection, derive_url};
use portcullis::ops::migrate;
use portcullis::ops::provision::connections::{ConnectionFile, PasswordsIn};
use portcullis::ops::provision::secrets::RoleKind;
use portcullis::ops::provision::{
    self, Confirmation, Environment, Names, Report, RolePasswords, SCHEMAS, Secrets, ServiceName,
    doctor, service,
};
use secrecy::SecretString;
use url::Url;

use crate::support::{admin_url, drop_blocking, unique_database_name};

const STRONG: &str = "a strong password, 32 characters";

/// A database and roles of this test's own.
struct Scratch {
    names: Names,
    services: Vec<Names>,
}

impl Scratch {
    fn new() -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        Self {
            names: Names::new(
                &unique_database_name(),
                &format!("t{tag}_migration"),
                &format!("t{tag}_app"),
            )
            .unwrap(),
            services: Vec::new(),
        }
    }

    /// Names for another service in the same database, dropped with it.
    fn service(&mut self, env: Environment) -> (ServiceName, Names) {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let service = ServiceName::parse(&format!("s{tag}")).unwrap();
        let names = Names::for_service(&service, env, &self.names.database).unwrap();
        self.services.push(names.clone());
        (service, names)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut roles = Vec::new();
        for names in std::iter::once(&self.names).chain(&self.services) {
            roles.push(names.app_role.clone());
            roles.push(names.migration_role.clone());
        }
        drop_blocking(self.names.database.clone(), roles);
    }
}

fn strong() -> RolePasswords {
    RolePasswords {
        migration: Some(SecretString::from(STRONG)),
        app: Some(SecretString::from(STRONG)),
    }
}

fn confirmed(env: Environment) -> Confirmation {
    Confirmation {
        drop: true,
        environment: Some(env),
    }
}

async fn database_exists(name: &str) -> bool {
    let mut admin = AdminConnection::connect(&admin_url().await).await.unwrap();
    provision::database_exists(&mut admin, name).await.unwrap()
}

/// A superuser connection inside `database`.
async fn superuser_in(database: &str) -> AsyncPgConnection {
    let admin = admin_url().await;
    let url = derive_url(&admin, admin.username(), admin.password(), database).unwrap();
    AsyncPgConnection::establish(url.as_str()).await.unwrap()
}

/// A connection as `role` (the test server trusts local connections).
async fn connect_as(role: &str, database: &str) -> AsyncPgConnection {
    let url = derive_url(&admin_url().await, role, None, database).unwrap();
    AsyncPgConnection::establish(url.as_str()).await.unwrap()
}

async fn provision_and_migrate(scratch: &Scratch, env: Environment) {
    let admin = admin_url().await;
    provision::provision(&admin, env, &scratch.names, &strong(), confirmed(env))
        .await
        .unwrap();
    let (migration_url, _) =
        provision::role_urls(&admin, &scratch.names, &RolePasswords::default()).unwrap();
    migrate::run(&migration_url).await.unwrap();
}

// --- What each environment may do ----------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn tst_drops_and_recreates_only_after_confirmation() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    let unconfirmed = Confirmation::default();
    let error = provision::provision(
        &admin,
        Environment::Tst,
        &scratch.names,
        &RolePasswords::default(),
        unconfirmed,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("--yes"), "{error}");
    assert!(
        !database_exists(&scratch.names.database).await,
        "nothing changed"
    );

    let yes = confirmed(Environment::Tst);
    let first = provision::provision(
        &admin,
        Environment::Tst,
        &scratch.names,
        &RolePasswords::default(),
        yes,
    )
    .await
    .unwrap();
    assert!(first.created_database && first.dropped.is_none());
    let again = provision::provision(
        &admin,
        Environment::Tst,
        &scratch.names,
        &RolePasswords::default(),
        yes,
    )
    .await
    .unwrap();
    assert!(again.created_database && again.dropped.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_qua_and_prd_never_drop_and_a_second_run_changes_nothing() {
    let admin = admin_url().await;
    for env in [Environment::Dev, Environment::Qua, Environment::Prd] {
        let scratch = Scratch::new();
        // Even told to drop, and confirmed.
        let first = provision::provision(&admin, env, &scratch.names, &strong(), confirmed(env))
            .await
            .unwrap();
        assert!(first.created_database, "{env}");
        superuser_in(&scratch.names.database)
            .await
            .batch_execute("CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (1)")
            .await
            .unwrap();
        let second = provision::provision(&admin, env, &scratch.names, &strong(), confirmed(env))
            .await
            .unwrap();
        assert_eq!(
            second,
            Report::default(),
            "{env}: the second run changed something"
        );
        superuser_in(&scratch.names.database)
            .await
            .batch_execute("SELECT id FROM public.kept")
            .await
            .expect("the data survives");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn qua_and_prd_change_nothing_without_their_name_confirmed() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    for env in [Environment::Qua, Environment::Prd] {
        for confirmation in [
            Confirmation::default(),
            Confirmation {
                drop: true,
                environment: Some(Environment::Dev),
            },
        ] {
            let error = provision::provision(&admin, env, &scratch.names, &strong(), confirmation)
                .await
                .unwrap_err();
            assert!(
                error.to_string().contains(&format!("--confirm-env {env}")),
                "{error}"
            );
        }
    }
    assert!(!database_exists(&scratch.names.database).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn qua_and_prd_refuse_missing_or_weak_passwords() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    let fifteen = SecretString::from("fifteen-chars!!");
    for env in [Environment::Qua, Environment::Prd] {
        let cases = [
            (RolePasswords::default(), "needs AUTH_MIGRATION_"),
            (
                RolePasswords {
                    migration: Some(SecretString::from(STRONG)),
                    app: Some(fifteen.clone()),
                },
                "shorter than 16",
            ),
        ];
        for (passwords, expected) in cases {
            let error =
                provision::provision(&admin, env, &scratch.names, &passwords, confirmed(env))
                    .await
                    .unwrap_err();
            assert!(error.to_string().contains(expected), "{env}: {error}");
        }
    }
    assert!(!database_exists(&scratch.names.database).await);
    // Any character goes, and what counts is characters, not bytes.
    let unusual = SecretString::from("'; DROP ROLE x; -- ${HOME} \"ü€\"");
    let passwords = RolePasswords {
        migration: Some(unusual.clone()),
        app: Some(unusual),
    };
    provision::provision(
        &admin,
        Environment::Prd,
        &scratch.names,
        &passwords,
        confirmed(Environment::Prd),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_reach_postgresql_only_as_scram_verifiers() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    provision::provision(
        &admin,
        Environment::Prd,
        &scratch.names,
        &strong(),
        confirmed(Environment::Prd),
    )
    .await
    .unwrap();
    let mut conn = AdminConnection::connect(&admin).await.unwrap();
    let scram = conn
        .query_bool(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' AND strpos(rolpassword, $2) = 0 AS value
               FROM pg_authid WHERE rolname = $1",
            &[&scratch.names.app_role, STRONG],
        )
        .await
        .unwrap();
    assert!(scram);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_services_roles_may_connect_to_a_database_provisioning_created() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    provision::provision(
        &admin,
        Environment::Dev,
        &scratch.names,
        &RolePasswords::default(),
        Confirmation::default(),
    )
    .await
    .unwrap();
    let mut conn = AdminConnection::connect(&admin).await.unwrap();
    // An ACL entry for PUBLIC has an empty grantee: `=c/owner`.
    let public_listed = conn
        .query_bool(
            "SELECT datacl::text ~ '(^\\{|,)=' AS value FROM pg_database WHERE datname = $1",
            &[&scratch.names.database],
        )
        .await
        .unwrap();
    assert!(!public_listed, "PUBLIC may still connect");
    let app_may_connect = conn
        .query_bool(
            "SELECT has_database_privilege($1, $2, 'CONNECT') AS value",
            &[&scratch.names.app_role, &scratch.names.database],
        )
        .await
        .unwrap();
    assert!(app_may_connect);
}

#[test]
fn names_follow_the_platform_convention_and_must_be_plain() {
    let auth = ServiceName::parse("auth").unwrap();
    let names = Names::for_service(&auth, Environment::Qua, "portcullis-qua").unwrap();
    assert_eq!(names.migration_role, "auth_migration_qua_user");
    assert_eq!(names.app_role, "auth_app_qua_user");
    assert_eq!(
        provision::default_database("go-labs", Environment::Prd),
        "go-labs-prd"
    );
    assert!(Names::new("go-labs-tst", "m_r", "a_r").is_ok());
    assert!(Names::new("Bad_Name", "m_r", "a_r").is_err());
    assert!(Names::new("ok", "same", "same").is_err());
    assert!(Names::new("ok", "m_r", provision::APP_GROUP_ROLE).is_err());
    assert!(Names::new("db\"; DROP", "m_r", "a_r").is_err());
    for bad in ["Payment", "pg_x", "public", "audit", "1st", "a-b", ""] {
        assert!(ServiceName::parse(bad).is_err(), "{bad}");
    }
}

// --- Migrations live in the service's schema ---------------------------

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_as_the_migration_role_which_owns_the_schemas() {
    let scratch = Scratch::new();
    provision_and_migrate(&scratch, Environment::Dev).await;
    let mut conn = superuser_in(&scratch.names.database).await;
    #[derive(diesel::QueryableByName)]
    struct Owner {
        #[diesel(sql_type = Text)]
        owner: String,
    }
    for schema in SCHEMAS {
        let found: Owner = diesel::sql_query(
            "SELECT nspowner::regrole::text AS owner FROM pg_namespace WHERE nspname = $1",
        )
        .bind::<Text, _>(schema)
        .get_result(&mut conn)
        .await
        .unwrap();
        assert_eq!(found.owner, scratch.names.migration_role, "{schema}");
    }
}

// --- Other services --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_provisioned_service_uses_its_own_schema_and_nothing_else() {
    let admin = admin_url().await;
    let mut scratch = Scratch::new();
    provision_and_migrate(&scratch, Environment::Dev).await;
    let (payments, payment_names) = scratch.service(Environment::Dev);
    let (other, other_names) = scratch.service(Environment::Dev);
    for (service, names) in [(&payments, &payment_names), (&other, &other_names)] {
        service::provision_service(
            &admin,
            Environment::Dev,
            service,
            names,
            &RolePasswords::default(),
            Confirmation::default(),
        )
        .await
        .unwrap();
    }
    let db = scratch.names.database.clone();
    for (service, names) in [(&payments, &payment_names), (&other, &other_names)] {
        // The migration role makes its tables as a migration would.
        connect_as(&names.migration_role, &db)
            .await
            .batch_execute(&format!(
                "CREATE TABLE {s}.requests (id serial PRIMARY KEY, amount int)",
                s = service.as_str()
            ))
            .await
            .unwrap();
    }
    let mut app = connect_as(&payment_names.app_role, &db).await;
    let own = payments.as_str();
    app.batch_execute(&format!(
        "INSERT INTO {own}.requests (amount) VALUES (10); UPDATE {own}.requests SET amount = 11; \
         SELECT * FROM {own}.requests; DELETE FROM {own}.requests"
    ))
    .await
    .expect("DML on its own tables");
    for refused in [
        format!("CREATE TABLE {own}.more (id int)"),
        format!("ALTER TABLE {own}.requests ADD COLUMN x int"),
        format!("DROP TABLE {own}.requests"),
        "CREATE TABLE public.stray (id int)".to_owned(),
        format!("SELECT * FROM {}.requests", other.as_str()),
        "SELECT * FROM auth.users".to_owned(),
        "SELECT * FROM audit.audit_events".to_owned(),
        "SELECT * FROM auth.schema_migrations".to_owned(),
    ] {
        assert!(
            app.batch_execute(&refused).await.is_err(),
            "{refused} was allowed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_a_service_twice_changes_nothing_and_only_tst_drops_its_schema() {
    let admin = admin_url().await;
    let mut scratch = Scratch::new();
    provision_and_migrate(&scratch, Environment::Dev).await;
    let (payments, names) = scratch.service(Environment::Dev);
    let dev = Confirmation::default();
    service::provision_service(
        &admin,
        Environment::Dev,
        &payments,
        &names,
        &RolePasswords::default(),
        dev,
    )
    .await
    .unwrap();
    let table = format!("{}.kept", payments.as_str());
    connect_as(&names.migration_role, &scratch.names.database)
        .await
        .batch_execute(&format!("CREATE TABLE {table} (id int)"))
        .await
        .unwrap();
    let again = service::provision_service(
        &admin,
        Environment::Dev,
        &payments,
        &names,
        &RolePasswords::default(),
        confirmed(Environment::Dev),
    )
    .await
    .unwrap();
    assert_eq!(again, Report::default());
    let mut su = superuser_in(&scratch.names.database).await;
    su.batch_execute(&format!("SELECT * FROM {table}"))
        .await
        .expect("kept in dev");

    let (tst_service, tst_names) = scratch.service(Environment::Tst);
    let tst = confirmed(Environment::Tst);
    let refused = service::provision_service(
        &admin,
        Environment::Tst,
        &tst_service,
        &tst_names,
        &RolePasswords::default(),
        Confirmation::default(),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("--yes"), "{refused}");
    service::provision_service(
        &admin,
        Environment::Tst,
        &tst_service,
        &tst_names,
        &RolePasswords::default(),
        tst,
    )
    .await
    .unwrap();
    let tst_table = format!("{}.gone", tst_service.as_str());
    connect_as(&tst_names.migration_role, &scratch.names.database)
        .await
        .batch_execute(&format!("CREATE TABLE {tst_table} (id int)"))
        .await
        .unwrap();
    let dropped = service::provision_service(
        &admin,
        Environment::Tst,
        &tst_service,
        &tst_names,
        &RolePasswords::default(),
        tst,
    )
    .await
    .unwrap();
    assert!(dropped.dropped.is_some() && dropped.created_schema);
    assert!(
        su.batch_execute(&format!("SELECT * FROM {tst_table}"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_is_not_provisioned_as_another_service() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    let auth = ServiceName::parse("auth").unwrap();
    let error = service::provision_service(
        &admin,
        Environment::Dev,
        &auth,
        &scratch.names,
        &RolePasswords::default(),
        Confirmation::default(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("db provision"), "{error}");
}

// --- Connection files and passwords ---------------------------------------

fn connection_file(admin: &Url, names: &Names, passwords_in: PasswordsIn) -> ConnectionFile {
    let auth = ServiceName::parse("auth").unwrap();
    ConnectionFile::new(
        admin,
        Environment::Qua,
        &auth,
        &SCHEMAS,
        names,
        &strong(),
        passwords_in,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connections_file_refers_to_passwords_unless_told_to_hold_them() {
    use std::os::unix::fs::PermissionsExt;
    let admin = Url::parse("postgres://postgres@db.example.test:6432/postgres?sslmode=verify-full")
        .unwrap();
    let names = Names::new(
        "portcullis-qua",
        "auth_migration_qua_user",
        "auth_app_qua_user",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let file = connection_file(&admin, &names, PasswordsIn::References);
    let path = file.write(dir.path(), PasswordsIn::References).unwrap();
    assert_eq!(path, dir.path().join("qua/auth-connections.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    for expected in [
        "host: db.example.test",
        "port: 6432",
        "database: portcullis-qua",
        "- auth",
        "- audit",
        "user: auth_app_qua_user",
        "postgres://auth_app_qua_user:${AUTH_APP_QUA_PASSWORD}@db.example.test:6432/portcullis-qua?sslmode=verify-full",
        "postgres://auth_migration_qua_user:${AUTH_MIGRATION_QUA_PASSWORD}@db.example.test:6432/portcullis-qua",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
    assert!(!text.contains(STRONG));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(ConnectionFile::read(&path).unwrap(), file);

    let held = connection_file(&admin, &names, PasswordsIn::Values);
    let path = held.write(dir.path(), PasswordsIn::Values).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("a%20strong%20password")
    );
}

#[test]
fn a_connections_file_carries_over_only_host_port_and_tls_parameters() {
    let names = Names::new(
        "portcullis-qua",
        "auth_migration_qua_user",
        "auth_app_qua_user",
    )
    .unwrap();
    let admin = Url::parse(
        "postgres://postgres@db.example.test:6432/postgres\
         ?sslmode=verify-full&sslrootcert=/etc/ca.pem&options=-c%20role%3Dpostgres&application_name=ops",
    )
    .unwrap();
    let file = connection_file(&admin, &names, PasswordsIn::References);
    assert_eq!(
        file.app.url,
        "postgres://auth_app_qua_user:${AUTH_APP_QUA_PASSWORD}@db.example.test:6432/portcullis-qua\
         ?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
    );
    for credential in ["password=secret", "sslpassword=secret"] {
        let carrying = Url::parse(&format!(
            "postgres://postgres@db.example.test/postgres?sslmode=require&{credential}"
        ))
        .unwrap();
        let auth = ServiceName::parse("auth").unwrap();
        let refused = ConnectionFile::new(
            &carrying,
            Environment::Qua,
            &auth,
            &SCHEMAS,
            &names,
            &strong(),
            PasswordsIn::References,
        )
        .unwrap_err();
        assert!(refused.to_string().contains("in its query"), "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tst_refuses_to_drop_a_database_it_was_not_named_for() {
    let victim = unique_database_name();
    let mut admin = AdminConnection::connect(&admin_url().await).await.unwrap();
    provision::create_database(&mut admin, &victim, None)
        .await
        .unwrap();
    let scratch_names = Names::new(&victim, "unused_migration", "unused_app").unwrap();
    let _cleanup = Scratch {
        names: scratch_names,
        services: Vec::new(),
    };
    let out = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        command
            .args(["db"])
            .args(args)
            .args(["--env", "tst", "--yes", "--output-dir"])
            .arg(out.path())
            .env_remove("PORTCULLIS_DATABASE_NAME")
            .env("PORTCULLIS_ADMIN_URL", "unused")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null());
        command.output().unwrap()
    };
    let admin = admin_url().await.to_string();
    let admin_env = [("PORTCULLIS_ADMIN_URL", admin.as_str())];
    for (args, env) in [
        (vec!["provision", "--database", &victim], admin_env.to_vec()),
        (
            vec!["provision"],
            vec![admin_env[0], ("PORTCULLIS_DATABASE_NAME", victim.as_str())],
        ),
        (
            vec!["provision-service", "ledger", "--database", &victim],
            admin_env.to_vec(),
        ),
        // Named again, but the variable a prd shell holds is still set.
        (
            vec![
                "provision",
                "--database",
                &victim,
                "--tst-database",
                &victim,
            ],
            vec![admin_env[0], ("PORTCULLIS_DATABASE_NAME", victim.as_str())],
        ),
    ] {
        let output = run(&args, &env);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} ran: {said}");
        assert!(said.contains("nothing changed"), "{args:?}: {said}");
        assert!(database_exists(&victim).await, "{args:?} dropped it");
    }
    assert!(
        !out.path().join("tst").exists(),
        "a refused run wrote no connections file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reference_is_read_from_the_environment_when_the_file_is_used() {
    let admin = Url::parse("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    let names = Names::new(
        "portcullis-qua",
        "auth_migration_qua_user",
        "auth_app_qua_user",
    )
    .unwrap();
    let file = connection_file(&admin, &names, PasswordsIn::References);
    let missing = file.app_url(&Secrets::default()).unwrap_err();
    assert!(
        missing.to_string().contains("set AUTH_APP_QUA_PASSWORD"),
        "{missing}"
    );
    let secrets = Secrets::from_pairs([("AUTH_APP_QUA_PASSWORD", "p@ss:/word ${x}")]);
    let url = file.app_url(&secrets).unwrap();
    assert_eq!(url.username(), "auth_app_qua_user");
    assert_eq!(percent_decode(url.password().unwrap()), "p@ss:/word ${x}");
    assert_eq!(url.path(), "/portcullis-qua");
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_reaches_its_database_through_the_connections_file() {
    let scratch = Scratch::new();
    provision_and_migrate(&scratch, Environment::Dev).await;
    let auth = ServiceName::parse("auth").unwrap();
    let admin = admin_url().await;
    let file = ConnectionFile::new(
        &admin,
        Environment::Dev,
        &auth,
        &SCHEMAS,
        &scratch.names,
        &RolePasswords::default(),
        PasswordsIn::References,
    )
    .unwrap();
    let url = file.app_url(&Secrets::default()).unwrap();
    let db = portcullis::db::Db::new(url.as_str(), &crate::support::test_pool()).unwrap();
    crate::support::fixtures::populate(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_a_password_sets_a_new_verifier_and_refuses_a_weak_one() {
    let admin = admin_url().await;
    let mut scratch = Scratch::new();
    let (payments, names) = scratch.service(Environment::Prd);
    service::provision_service(
        &admin,
        Environment::Prd,
        &payments,
        &names,
        &strong(),
        confirmed(Environment::Prd),
    )
    .await
    .unwrap();
    let mut conn = AdminConnection::connect(&admin).await.unwrap();
    let verifier = async |conn: &mut AdminConnection| {
        conn.query_strings(
            "SELECT rolpassword AS value FROM pg_authid WHERE rolname = $1",
            &[&names.app_role],
        )
        .await
        .unwrap()
    };
    let before = verifier(&mut conn).await;
    let weak = SecretString::from("short");
    let refused = service::rotate_password(
        &admin,
        Environment::Prd,
        &payments,
        RoleKind::App,
        Some(&weak),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("shorter than 16"), "{refused}");
    assert_eq!(verifier(&mut conn).await, before);
    let new = SecretString::from("another strong password, 33 chars");
    let role = service::rotate_password(
        &admin,
        Environment::Prd,
        &payments,
        RoleKind::App,
        Some(&new),
    )
    .await
    .unwrap();
    assert_eq!(role, names.app_role);
    let after = verifier(&mut conn).await;
    assert_ne!(after, before);
    assert!(after[0].starts_with("SCRAM-SHA-256$"));
}

#[test]
fn an_env_file_holds_passwords_with_any_character_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env.qua");
    std::fs::write(
        &path,
        "# passwords for qua\nAUTH_APP_QUA_PASSWORD='it is $HOME; rm -rf / # not a comment'\n\
         AUTH_MIGRATION_QUA_PASSWORD=\"from the file, long enough\"\n",
    )
    .unwrap();
    let secrets = Secrets::load(Some(&path)).unwrap();
    let auth = ServiceName::parse("auth").unwrap();
    let passwords = secrets.passwords(&auth, Environment::Qua);
    use secrecy::ExposeSecret;
    assert_eq!(
        passwords.migration.unwrap().expose_secret(),
        "from the file, long enough"
    );
    assert_eq!(
        passwords.app.unwrap().expose_secret(),
        "it is $HOME; rm -rf / # not a comment"
    );
    assert!(Secrets::load(Some(&dir.path().join("missing"))).is_err());
}

// --- The doctor ---------------------------------------------------------

/// A fully provisioned and migrated environment of this test's own.
async fn healthy() -> (Scratch, Url) {
    let scratch = Scratch::new();
    provision_and_migrate(&scratch, Environment::Dev).await;
    (scratch, admin_url().await)
}

async fn diagnose(scratch: &Scratch, admin: &Url) -> doctor::Diagnosis {
    doctor::diagnose(admin, Environment::Dev, &scratch.names)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_doctor_passes_a_healthy_environment() {
    let (scratch, admin) = healthy().await;
    let diagnosis = diagnose(&scratch, &admin).await;
    assert!(diagnosis.passed(), "{diagnosis}");
    assert!(diagnosis.checks.len() >= 11, "{diagnosis}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_doctor_catches_each_misconfiguration_and_passes_once_it_is_fixed() {
    let (scratch, admin) = healthy().await;
    let (app, migration) = (&scratch.names.app_role, &scratch.names.migration_role);
    let cases: Vec<(&str, String, String)> = vec![
        (
            "is not a superuser and does not bypass row-level security",
            format!("ALTER ROLE {app} BYPASSRLS"),
            format!("ALTER ROLE {app} NOBYPASSRLS"),
        ),
        (
            "owns nothing",
            format!(
                "CREATE TABLE auth.stray (id int); ALTER TABLE auth.stray ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY; ALTER TABLE auth.stray OWNER TO {app}"
            ),
            "DROP TABLE auth.stray".into(),
        ),
        (
            "has no DDL",
            format!("GRANT CREATE ON SCHEMA auth TO {app}"),
            format!("REVOKE CREATE ON SCHEMA auth FROM {app}"),
        ),
        (
            "has USAGE and DML",
            format!("REVOKE {} FROM {app}", provision::APP_GROUP_ROLE),
            format!("GRANT {} TO {app}", provision::APP_GROUP_ROLE),
        ),
        (
            "every table has row-level security enabled and forced",
            "ALTER TABLE auth.roles NO FORCE ROW LEVEL SECURITY".into(),
            "ALTER TABLE auth.roles FORCE ROW LEVEL SECURITY".into(),
        ),
        (
            "migrations are current",
            "CREATE TABLE kept AS SELECT * FROM auth.schema_migrations; \
             DELETE FROM auth.schema_migrations WHERE version = (SELECT max(version) FROM kept)"
                .into(),
            "INSERT INTO auth.schema_migrations SELECT * FROM kept \
               WHERE version NOT IN (SELECT version FROM auth.schema_migrations); DROP TABLE kept"
                .into(),
        ),
        (
            "migration tracking lives in auth",
            "CREATE TABLE public.__diesel_schema_migrations (version text)".into(),
            "DROP TABLE public.__diesel_schema_migrations".into(),
        ),
        (
            "cannot use another service's schema",
            format!("CREATE SCHEMA elsewhere; GRANT USAGE ON SCHEMA elsewhere TO {app}"),
            "DROP SCHEMA elsewhere".into(),
        ),
        (
            "has the defaults its checks are planned and timed by",
            format!("ALTER ROLE {app} RESET plan_cache_mode"),
            format!("ALTER ROLE {app} SET plan_cache_mode = 'force_generic_plan'"),
        ),
        (
            "has the defaults its checks are planned and timed by",
            format!("ALTER ROLE {app} RESET search_path"),
            format!("ALTER ROLE {app} SET search_path = pg_catalog, pg_temp"),
        ),
        (
            "search path (pg_catalog, pg_temp)",
            format!("GRANT CREATE ON SCHEMA pg_catalog TO {migration}"),
            format!("REVOKE CREATE ON SCHEMA pg_catalog FROM {migration}"),
        ),
        (
            "owns the schemas auth and audit",
            "ALTER SCHEMA audit OWNER TO CURRENT_USER".into(),
            format!("ALTER SCHEMA audit OWNER TO {migration}"),
        ),
    ];
    let mut su = superuser_in(&scratch.names.database).await;
    for (check, break_it, fix_it) in cases {
        su.batch_execute(&break_it).await.unwrap();
        let broken = diagnose(&scratch, &admin).await;
        let failed = broken.failed();
        assert!(
            failed.len() == 1 && failed[0].ends_with(check),
            "{check}: failed {failed:?}\n{broken}"
        );
        su.batch_execute(&fix_it).await.unwrap();
        let fixed = diagnose(&scratch, &admin).await;
        assert!(fixed.passed(), "{check} after the fix:\n{fixed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_doctor_says_what_to_do_when_the_server_or_database_is_missing() {
    let scratch = Scratch::new();
    let admin = admin_url().await;
    let missing = diagnose(&scratch, &admin).await;
    assert_eq!(missing.failed(), ["database exists"]);
    assert!(
        missing
            .to_string()
            .contains("portcullis db provision --env dev"),
        "{missing}"
    );

    let port = crate::support::ports::unused_port();
    let nowhere = Url::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).unwrap();
    let unreachable = diagnose(&scratch, &nowhere).await;
    assert_eq!(unreachable.failed(), ["server reachable"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_release_s_tracking_table_moves_into_auth() {
    let (scratch, _) = healthy().await;
    let mut su = superuser_in(&scratch.names.database).await;
    // As an earlier release left it: diesel's table in public.
    su.batch_execute(&format!(
        "CREATE TABLE public.__diesel_schema_migrations (version varchar(50) PRIMARY KEY, \
             run_on timestamp NOT NULL DEFAULT current_timestamp);
         INSERT INTO public.__diesel_schema_migrations SELECT * FROM auth.schema_migrations;
         ALTER TABLE public.__diesel_schema_migrations OWNER TO {};
         DROP TABLE auth.schema_migrations",
        scratch.names.migration_role
    ))
    .await
    .unwrap();
    let (migration_url, _) = provision::role_urls(
        &admin_url().await,
        &scratch.names,
        &RolePasswords::default(),
    )
    .unwrap();
    assert!(
        migrate::run(&migration_url).await.unwrap().is_empty(),
        "nothing re-run"
    );
    let diagnosis = diagnose(&scratch, &admin_url().await).await;
    assert!(diagnosis.passed(), "{diagnosis}");
}
