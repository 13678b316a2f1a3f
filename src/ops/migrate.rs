//! Embedded diesel migrations, applied as the migration role through
//! diesel-async (no libpq).
//!
//! The platform keeps each service's migration tracking in the service's
//! own schema, so the applied versions live in `auth.schema_migrations`,
//! not in diesel's `public.__diesel_schema_migrations`: [`Tracked`] is
//! diesel's harness with that one difference. The table can only be
//! created once the first migration has made the `auth` schema.

use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationVersion};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use url::Url;

use super::admin::{AdminConnection, OperatorError};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Where the applied versions are kept.
pub const TRACKING_TABLE: &str = "auth.schema_migrations";

/// Key of the advisory lock that lets one migrator run at a time.
const MIGRATION_LOCK: i64 = 0x706f_7274_0002;

type Result<T> = diesel::migration::Result<T>;

/// Applies every pending migration; returns the versions applied (empty when
/// the schema was already current). Needs the multi-threaded tokio runtime.
pub async fn run(migration_url: &Url) -> std::result::Result<Vec<String>, OperatorError> {
    let mut admin = AdminConnection::connect(migration_url).await?;
    admin.lock(MIGRATION_LOCK).await?;
    let mut harness = Tracked::new(admin.into_inner());
    let applied = tokio::task::block_in_place(|| harness.run_pending_migrations(MIGRATIONS))
        .map_err(|error| OperatorError::Migration(error.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Diesel's migration harness, tracking in [`TRACKING_TABLE`]. Its calls
/// block: run them in `tokio::task::block_in_place`.
pub struct Tracked {
    conn: AsyncConnectionWrapper<AsyncPgConnection>,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

impl Tracked {
    pub fn new(conn: AsyncPgConnection) -> Self {
        Self { conn: conn.into() }
    }

    fn table_exists(
        conn: &mut AsyncConnectionWrapper<AsyncPgConnection>,
        name: &str,
    ) -> Result<bool> {
        let found: Exists = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS present")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(conn)?;
        Ok(found.present)
    }

    /// Creates the tracking table once `auth` exists, taking over the
    /// versions an earlier release recorded in diesel's default table.
    /// Row-level security as on every table: only the schema's owner (the
    /// migration role) sees the rows; the application role has no grant.
    fn ensure_table(conn: &mut AsyncConnectionWrapper<AsyncPgConnection>) -> Result<bool> {
        if Self::table_exists(conn, TRACKING_TABLE)? {
            return Ok(true);
        }
        if !Self::table_exists(conn, "auth.tenants")? {
            return Ok(false);
        }
        conn.batch_execute(
            "CREATE TABLE auth.schema_migrations (
                 version varchar(50) PRIMARY KEY,
                 run_on timestamp NOT NULL DEFAULT current_timestamp
             );
             ALTER TABLE auth.schema_migrations ENABLE ROW LEVEL SECURITY;
             ALTER TABLE auth.schema_migrations FORCE ROW LEVEL SECURITY;
             CREATE POLICY schema_owner_only ON auth.schema_migrations
                 USING (pg_has_role(current_user,
                        (SELECT nspowner FROM pg_namespace WHERE nspname = 'auth'), 'MEMBER'))
                 WITH CHECK (pg_has_role(current_user,
                        (SELECT nspowner FROM pg_namespace WHERE nspname = 'auth'), 'MEMBER'));",
        )?;
        if Self::table_exists(conn, "public.__diesel_schema_migrations")? {
            conn.batch_execute(
                "INSERT INTO auth.schema_migrations (version, run_on)
                     SELECT version, run_on FROM public.__diesel_schema_migrations;
                 DROP TABLE public.__diesel_schema_migrations;",
            )?;
        }
        Ok(true)
    }
}

impl MigrationHarness<diesel::pg::Pg> for Tracked {
    fn run_migration(
        &mut self,
        migration: &dyn Migration<diesel::pg::Pg>,
    ) -> Result<MigrationVersion<'static>> {
        let version = migration.name().version().as_owned();
        let apply = |conn: &mut AsyncConnectionWrapper<AsyncPgConnection>| -> Result<()> {
            migration.run(conn)?;
            Self::ensure_table(conn)?;
            diesel::sql_query("INSERT INTO auth.schema_migrations (version) VALUES ($1)")
                .bind::<diesel::sql_types::Text, _>(version.to_string())
                .execute(conn)?;
            Ok(())
        };
        if migration.metadata().run_in_transaction() {
            self.conn.transaction(apply)?;
        } else {
            apply(&mut self.conn)?;
        }
        Ok(version)
    }

    fn revert_migration(
        &mut self,
        migration: &dyn Migration<diesel::pg::Pg>,
    ) -> Result<MigrationVersion<'static>> {
        let version = migration.name().version().as_owned();
        let revert = |conn: &mut AsyncConnectionWrapper<AsyncPgConnection>| -> Result<()> {
            migration.revert(conn)?;
            // Reverting the first migration drops `auth`, and the table with it.
            if Self::table_exists(conn, TRACKING_TABLE)? {
                diesel::sql_query("DELETE FROM auth.schema_migrations WHERE version = $1")
                    .bind::<diesel::sql_types::Text, _>(version.to_string())
                    .execute(conn)?;
            }
            Ok(())
        };
        if migration.metadata().run_in_transaction() {
            self.conn.transaction(revert)?;
        } else {
            revert(&mut self.conn)?;
        }
        Ok(version)
    }

    fn applied_migrations(&mut self) -> Result<Vec<MigrationVersion<'static>>> {
        if !Self::ensure_table(&mut self.conn)? {
            return Ok(Vec::new());
        }
        let versions: Vec<Version> = diesel::sql_query(
            "SELECT version::text AS version FROM auth.schema_migrations ORDER BY version DESC",
        )
        .load(&mut self.conn)?;
        Ok(versions
            .into_iter()
            .map(|v| MigrationVersion::from(v.version))
            .collect())
    }
}
