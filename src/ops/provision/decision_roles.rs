//! What the SQL decision functions accept from a service's roles
//! (`auth.decision_roles`): the tenants whose users they may name, and
//! whether only a user named by a Portcullis-signed assertion counts.
//! Without a binding a role may name any user of any tenant: the
//! functions trust the service to have authenticated its user.

use url::Url;
use uuid::Uuid;

use super::Names;
use crate::ops::admin::{AdminConnection, OperatorError, literal};

/// Whose users a service's roles may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantScope {
    Any,
    Only(Vec<Uuid>),
}

impl TenantScope {
    /// `any`, or tenant ids separated by commas.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim() == "any" {
            return Ok(Self::Any);
        }
        let tenants = raw
            .split(',')
            .map(|id| {
                id.trim()
                    .parse::<Uuid>()
                    .map_err(|_| format!("`{}` is not a tenant id (a UUID) or `any`", id.trim()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Only(tenants))
    }
}

/// A change to a service's binding; `None` leaves that part as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecisionBinding {
    pub tenants: Option<TenantScope>,
    pub signed: Option<bool>,
}

impl DecisionBinding {
    pub fn is_empty(&self) -> bool {
        self.tenants.is_none() && self.signed.is_none()
    }
}

/// Applies `binding` to the service's two roles in its database (where
/// Portcullis must be migrated) and returns what is in force, as a line
/// for the operator.
pub async fn bind_decision_roles(
    admin_url: &Url,
    names: &Names,
    binding: &DecisionBinding,
) -> Result<String, OperatorError> {
    let mut admin = AdminConnection::connect_in(admin_url, &names.database).await?;
    let migrated = admin
        .query_bool(
            "SELECT to_regclass('auth.decision_roles') IS NOT NULL AS value",
            &[],
        )
        .await?;
    if !migrated {
        return Err(OperatorError::Invalid(format!(
            "database {} has no auth.decision_roles: migrate Portcullis there first \
             (portcullis db migrate)",
            names.database
        )));
    }
    let mut statements = String::new();
    for role in [&names.app_role, &names.migration_role] {
        let role = literal(role);
        statements.push_str(&format!(
            "INSERT INTO auth.decision_roles (role_name) VALUES ({role}) ON CONFLICT DO NOTHING;"
        ));
        if let Some(tenants) = &binding.tenants {
            let tenant_ids = match tenants {
                TenantScope::Any => "NULL".to_owned(),
                TenantScope::Only(ids) => {
                    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                    format!("{}::uuid[]", literal(&format!("{{{}}}", ids.join(","))))
                }
            };
            statements.push_str(&format!(
                "UPDATE auth.decision_roles SET tenant_ids = {tenant_ids}, updated_utc = now() \
                 WHERE role_name = {role};"
            ));
        }
        if let Some(signed) = binding.signed {
            statements.push_str(&format!(
                "UPDATE auth.decision_roles SET signed_flag = {signed}, updated_utc = now() \
                 WHERE role_name = {role};"
            ));
        }
    }
    admin
        .execute(
            "binding the service's roles in auth.decision_roles",
            &format!("BEGIN; {statements} COMMIT;"),
        )
        .await?;
    let in_force = admin
        .query_strings(
            "SELECT format('%s: tenants %s, signed context %s', role_name, \
                    coalesce(array_to_string(tenant_ids, ','), 'any'), \
                    CASE WHEN signed_flag THEN 'on' ELSE 'off' END) AS value \
               FROM auth.decision_roles WHERE role_name IN ($1, $2) ORDER BY role_name",
            &[&names.app_role, &names.migration_role],
        )
        .await?;
    Ok(in_force.join("\n"))
}
