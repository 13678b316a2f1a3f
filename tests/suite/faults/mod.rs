//! Faults: the database ended, cut, stalled or slowed under the server,
//! one call at a time and under concurrent load. Whatever happens, a
//! caller gets a retryable code (never `INTERNAL`), within a bound, and
//! nothing acknowledged is lost.

mod load;
mod single_call;
mod under_load;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::support::TestDb;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A superuser's connection inside the test's database.
async fn superuser(test: &TestDb) -> AsyncPgConnection {
    let mut url = test.admin_url.clone();
    url.set_path(&test.name);
    AsyncPgConnection::establish(url.as_str()).await.unwrap()
}
