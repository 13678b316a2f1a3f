//! Embedded diesel migrations, applied as the owner role through diesel-async
//! (no libpq).

use diesel_async::AsyncMigrationHarness;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use url::Url;

use super::admin::{AdminConnection, AdminError};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock that lets one migrator run at a time.
const MIGRATION_LOCK: i64 = 0x706f_7274_0002;

/// Applies every pending migration; returns the versions applied (empty when
/// the schema was already current). Needs the multi-threaded tokio runtime.
pub async fn run(owner_url: &Url) -> Result<Vec<String>, AdminError> {
    let mut admin = AdminConnection::connect(owner_url).await?;
    admin.lock(MIGRATION_LOCK).await?;
    let mut harness = AsyncMigrationHarness::new(admin.into_inner());
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|error| AdminError::Migration(error.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}
