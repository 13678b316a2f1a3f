//! Faults: the database ended, cut, stalled or slowed under the server,
//! one call at a time and under concurrent load. Whatever happens, a
//! caller gets a retryable code (never `INTERNAL`), within a bound, and
//! nothing acknowledged is lost.

mod load;
mod single_call;
mod under_load;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use portcullis::authn::users::{NewUser, create_user};
use portcullis::authn::{Email, HashCost, Login, Passwords};
use portcullis::db::Db;
use portcullis::names::NewPassword;
use portcullis::proto::v1::{
    AuthenticateRequest, PasswordCredentials, authenticate_request, password_credentials,
};
use uuid::Uuid;

use crate::support::TestDb;

/// Every fault test user's password.
const PASSWORD: &str = "correct horse battery staple";

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A connection holding `table` locked (as its owner) in an open
/// transaction: statements that touch the table wait until it is rolled
/// back.
async fn lock(test: &TestDb, table: &str) -> AsyncPgConnection {
    let mut holder = AsyncPgConnection::establish(test.migration_url.as_str())
        .await
        .unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    holder
}

/// A user of `tenant` who logs in with `email` and [`PASSWORD`].
async fn password_user(db: &Db, tenant: Uuid, email: &str) -> Uuid {
    let passwords = Passwords::new(
        HashCost::INSECURE_FAST_FOR_TESTS,
        2,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    create_user(
        db,
        &passwords,
        &NewUser {
            tenant_id: tenant,
            display_name: "Faults".into(),
            logins: vec![Login::Email(Email::parse(email).unwrap())],
            password: Some(NewPassword::parse(PASSWORD).unwrap()),
        },
    )
    .await
    .unwrap()
}

/// A password login as `email` with [`PASSWORD`].
fn password_login(tenant: Uuid, email: &str) -> AuthenticateRequest {
    AuthenticateRequest {
        tenant_id: tenant.to_string(),
        method: Some(authenticate_request::Method::Password(
            PasswordCredentials {
                login: Some(password_credentials::Login::Email(email.to_owned())),
                password: PASSWORD.into(),
            },
        )),
    }
}
