//! The issuer this server signs as, recorded in `auth.token_issuers`: the
//! SQL decision functions count PostgREST's `request.jwt.claims` only when
//! their `iss` is one Portcullis recorded there.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;

use crate::db::schema::auth::token_issuers as ti;
use crate::db::{Db, DbError, RlsContext};

/// Records `issuer` (once; a second server with the same issuer changes
/// nothing).
pub async fn record_issuer(db: &Db, issuer: &str) -> Result<(), DbError> {
    use diesel::ExpressionMethods;
    let issuer = issuer.to_owned();
    db.write(&RlsContext::purpose("token_issuer"), |conn| {
        async move {
            diesel::insert_into(ti::table)
                .values(ti::issuer_text.eq(issuer))
                .on_conflict_do_nothing()
                .execute(conn)
                .await
                .map(drop)
                .map_err(DbError::from)
        }
        .scope_boxed()
    })
    .await
}

/// Records `issuer`, retrying until the database answers.
pub async fn keep_recording_issuer(db: Db, issuer: String) {
    let mut wait = Duration::from_millis(200);
    while let Err(error) = record_issuer(&db, &issuer).await {
        tracing::warn!(%error, "recording the token issuer failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}
