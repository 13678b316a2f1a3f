//! `portcullis seed-demo`: a small, idempotent demo world for newcomers.

use diesel_async::SimpleAsyncConnection;
use scoped_futures::ScopedFutureExt;
use uuid::{Uuid, uuid};

use crate::db::{Db, DbError, RlsContext};

pub const DEMO_TENANT_ID: Uuid = uuid!("d0000000-0000-4000-8000-000000000001");
pub const DEMO_ROOT_NODE_ID: Uuid = uuid!("d0000000-0000-4000-8001-000000000001");
pub const DEMO_PARIS_NODE_ID: Uuid = uuid!("d0000000-0000-4000-8001-000000000004");
pub const DEMO_ALICE_ID: Uuid = uuid!("d0000000-0000-4000-8003-000000000001");
pub const DEMO_BOB_ID: Uuid = uuid!("d0000000-0000-4000-8003-000000000002");
pub const DEMO_SERVICE_KEY: &str = "demo-gateway";

const DEMO_SQL: &str = include_str!("demo.sql");

/// Writes the demo data through the application role's RLS-scoped door.
pub async fn seed_demo(db: &Db) -> Result<(), DbError> {
    let ctx = RlsContext::operator().with_tenant(DEMO_TENANT_ID);
    db.write(&ctx, |conn| {
        async move {
            conn.batch_execute(DEMO_SQL).await?;
            Ok::<_, DbError>(())
        }
        .scope_boxed()
    })
    .await
}
