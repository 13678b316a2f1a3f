//! Connections outside the RLS-scoped door, for operator tasks only:
//! provisioning (as a superuser) and migrations (as the owner role). Neither
//! ever runs on behalf of a network request.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use url::Url;

use crate::db::connect::ConnectTarget;

/// An error of an operator task, with a message meant for a person.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot connect to {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("{context}: {cause}")]
    Sql {
        context: String,
        cause: diesel::result::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

/// A superuser or owner connection for operator tasks.
pub struct AdminConnection {
    conn: AsyncPgConnection,
}

impl AdminConnection {
    pub async fn connect(url: &Url) -> Result<Self, OperatorError> {
        let target = ConnectTarget::parse(url.as_str())
            .map_err(|cause| OperatorError::Invalid(cause.to_string()))?;
        let (conn, _) = target
            .establish()
            .await
            .map_err(|cause| OperatorError::Connect {
                target: redact(url),
                cause: cause.to_string(),
            })?;
        Ok(Self { conn })
    }

    /// The same administrator, connected to `database` on the same server.
    pub async fn connect_in(admin_url: &Url, database: &str) -> Result<Self, OperatorError> {
        let url = derive_url(
            admin_url,
            admin_url.username(),
            admin_url.password(),
            database,
        )?;
        Self::connect(&url).await
    }

    pub(crate) fn into_inner(self) -> AsyncPgConnection {
        self.conn
    }

    pub async fn execute(&mut self, context: &str, sql: &str) -> Result<(), OperatorError> {
        self.conn
            .batch_execute(sql)
            .await
            .map_err(|cause| OperatorError::Sql {
                context: context.to_owned(),
                cause,
            })
    }

    /// Runs a query returning one boolean, with text parameters.
    pub async fn query_bool(&mut self, sql: &str, params: &[&str]) -> Result<bool, OperatorError> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Bool)]
            value: bool,
        }
        let mut query = diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>();
        for param in params {
            query = query.bind::<Text, _>(param.to_string());
        }
        let row: Row =
            query
                .get_result(&mut self.conn)
                .await
                .map_err(|cause| OperatorError::Sql {
                    context: format!("query `{sql}`"),
                    cause,
                })?;
        Ok(row.value)
    }

    /// Runs a query returning one text column, with text parameters.
    pub async fn query_strings(
        &mut self,
        sql: &str,
        params: &[&str],
    ) -> Result<Vec<String>, OperatorError> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            value: String,
        }
        let mut query = diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>();
        for param in params {
            query = query.bind::<Text, _>(param.to_string());
        }
        let rows: Vec<Row> =
            query
                .load(&mut self.conn)
                .await
                .map_err(|cause| OperatorError::Sql {
                    context: format!("query `{sql}`"),
                    cause,
                })?;
        Ok(rows.into_iter().map(|row| row.value).collect())
    }

    /// Names of the databases whose name starts with `prefix`.
    pub async fn database_names(&mut self, prefix: &str) -> Result<Vec<String>, OperatorError> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            datname: String,
        }
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT datname::text AS datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
        )
        .bind::<Text, _>(prefix)
        .load(&mut self.conn)
        .await
        .map_err(|cause| OperatorError::Sql {
            context: "listing databases".into(),
            cause,
        })?;
        Ok(rows.into_iter().map(|row| row.datname).collect())
    }

    /// Holds a session-level advisory lock until the connection closes, so
    /// concurrent provisioners and migrators take turns.
    pub async fn lock(&mut self, key: i64) -> Result<(), OperatorError> {
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(key)
            .execute(&mut self.conn)
            .await
            .map_err(|cause| OperatorError::Sql {
                context: "taking the provisioning lock".into(),
                cause,
            })?;
        Ok(())
    }
}

/// The URL with its password replaced, for messages and logs.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// `url` with another user, password and database; host, port and
/// parameters stay.
pub fn derive_url(
    base: &Url,
    user: &str,
    password: Option<&str>,
    database: &str,
) -> Result<Url, OperatorError> {
    let mut url = base.clone();
    url.set_username(user)
        .and_then(|()| url.set_password(password))
        .map_err(|()| {
            OperatorError::Invalid(format!("cannot derive a URL from {}", redact(base)))
        })?;
    url.set_path(&format!("/{database}"));
    Ok(url)
}

/// Quotes a role or database name we validated ourselves.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
