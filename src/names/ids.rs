//! Ids a request names, one type each, so a node id cannot be passed where
//! a user id is expected. Parsed at the edge; bound to SQL as `uuid`.

use std::fmt;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Uuid as SqlUuid;
use uuid::Uuid;

use super::NameError;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow)]
        #[diesel(sql_type = SqlUuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A UUID in any of its usual spellings.
            pub fn parse(raw: &str) -> Result<Self, NameError> {
                if raw.is_empty() {
                    return Err(NameError::Empty);
                }
                Uuid::try_parse(raw)
                    .map(Self)
                    .map_err(|_| NameError::Shape("a UUID"))
            }

            pub const fn get(self) -> Uuid {
                self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;

            fn from_str(raw: &str) -> Result<Self, NameError> {
                Self::parse(raw)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<Uuid> for $name {
            fn eq(&self, other: &Uuid) -> bool {
                self.0 == *other
            }
        }

        // Spelled as the bare UUID, in messages and in idempotency
        // fingerprints alike.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl ToSql<SqlUuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <Uuid as ToSql<SqlUuid, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<SqlUuid, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <Uuid as FromSql<SqlUuid, Pg>>::from_sql(bytes).map(Self)
            }
        }
    };
}

id!(
    /// A tenant.
    TenantId
);
id!(
    /// A node of a tenant's org tree.
    OrgNodeId
);
id!(
    /// A user of a tenant.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_uuids_and_nothing_else() {
        let raw = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert_eq!(OrgNodeId::parse(raw).unwrap().to_string(), raw);
        assert_eq!(UserId::parse(""), Err(NameError::Empty));
        assert_eq!(TenantId::parse("67e55044"), Err(NameError::Shape("a UUID")));
    }

    #[test]
    fn an_id_is_spelled_like_its_uuid() {
        let id = Uuid::new_v4();
        assert_eq!(
            format!("{:?}", Some(OrgNodeId::from(id))),
            format!("{:?}", Some(id))
        );
    }
}
