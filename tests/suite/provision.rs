//! `portcullis db provision`: what each environment may create and drop.

use portcullis::ops::admin::AdminConnection;
use portcullis::ops::provision::{self, Environment, Names, Passwords, Report};
use secrecy::SecretString;

use crate::support::{APP_ROLE, OWNER_ROLE, admin_url, unique_database_name};

struct Scratch {
    names: Names,
}

impl Scratch {
    fn new() -> Self {
        Self {
            names: Names::new(&unique_database_name(), OWNER_ROLE, APP_ROLE).unwrap(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        crate::support::drop_database_blocking(self.names.database.clone());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_creates_what_is_missing_and_a_second_run_changes_nothing() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    let first = provision::provision(
        &admin,
        Environment::Dev,
        &scratch.names,
        &Passwords::default(),
    )
    .await
    .unwrap();
    assert!(first.created_database && !first.dropped_database);

    let second = provision::provision(
        &admin,
        Environment::Dev,
        &scratch.names,
        &Passwords::default(),
    )
    .await
    .unwrap();
    assert_eq!(second, Report::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn tst_drops_and_recreates_the_database() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    provision::provision(
        &admin,
        Environment::Tst,
        &scratch.names,
        &Passwords::default(),
    )
    .await
    .unwrap();
    let again = provision::provision(
        &admin,
        Environment::Tst,
        &scratch.names,
        &Passwords::default(),
    )
    .await
    .unwrap();
    assert!(again.dropped_database && again.created_database);
}

#[tokio::test(flavor = "multi_thread")]
async fn prd_refuses_to_run_without_role_passwords() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    let only_owner = Passwords {
        owner: Some(SecretString::from("owner-secret")),
        app: None,
    };
    let error = provision::provision(&admin, Environment::Prd, &scratch.names, &only_owner)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("PORTCULLIS_APP_PASSWORD"),
        "{error}"
    );
    let mut conn = AdminConnection::connect(&admin).await.unwrap();
    assert!(
        !provision::database_exists(&mut conn, &scratch.names.database)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_and_application_roles_may_connect() {
    let admin = admin_url().await;
    let scratch = Scratch::new();
    provision::provision(
        &admin,
        Environment::Dev,
        &scratch.names,
        &Passwords::default(),
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
            &[APP_ROLE, &scratch.names.database],
        )
        .await
        .unwrap();
    assert!(app_may_connect);
}

#[test]
fn names_must_be_plain_identifiers_and_distinct_roles() {
    assert!(Names::new("ok_db", "owner_r", "app_r").is_ok());
    assert!(Names::new("Bad-Name", "owner_r", "app_r").is_err());
    assert!(Names::new("ok_db", "same", "same").is_err());
    assert!(Names::new("ok_db", "owner_r", provision::APP_GROUP_ROLE).is_err());
    assert!(Names::new("db\"; DROP", "owner_r", "app_r").is_err());
}
