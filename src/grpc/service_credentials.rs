//! `portcullis.v1.ServiceCredentials`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::fields::token_field;
use super::request::{caller, invalid, request_id, timestamp};
use crate::db::Db;
use crate::proto::v1::revoke_service_token_request::Target;
use crate::proto::v1::service_credentials_server::ServiceCredentials;
use crate::proto::v1::*;
use crate::secrets::{PresentedSecret, SecretKind};
use crate::service_accounts::names::{Permission, ServiceKey};
use crate::service_accounts::{self, ExchangeRequest};
use crate::tokens::Tokens;

/// More than any service needs; bounds the work one request can ask for.
const MAX_REQUESTED_PERMISSIONS: usize = 64;
/// Secrets are 80 characters; anything much longer is not one.
const MAX_SECRET_LEN: usize = 256;

pub struct ServiceCredentialsService {
    db: Db,
    tokens: Arc<Tokens>,
    token_lifetime: Duration,
}

impl ServiceCredentialsService {
    pub fn new(db: Db, tokens: Arc<Tokens>, token_lifetime: Duration) -> Self {
        Self {
            db,
            tokens,
            token_lifetime,
        }
    }
}

#[tonic::async_trait]
impl ServiceCredentials for ServiceCredentialsService {
    async fn exchange_service_credential(
        &self,
        request: Request<ExchangeServiceCredentialRequest>,
    ) -> Result<Response<ExchangeServiceCredentialResponse>, Status> {
        let request_id = request_id(&request);
        let body = request.into_inner();
        let key = ServiceKey::parse(&body.service_key).map_err(|e| invalid("service_key", e))?;
        if body.secret.is_empty() {
            return Err(invalid("secret", "is required"));
        }
        if body.secret.len() > MAX_SECRET_LEN {
            return Err(invalid(
                "secret",
                format!("is longer than {MAX_SECRET_LEN} characters"),
            ));
        }
        if body.requested_permissions.len() > MAX_REQUESTED_PERMISSIONS {
            return Err(invalid(
                "requested_permissions",
                format!("at most {MAX_REQUESTED_PERMISSIONS} may be requested"),
            ));
        }
        let mut requested = body
            .requested_permissions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Permission::parse(p).map_err(|e| invalid(&format!("requested_permissions[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        requested.sort();
        requested.dedup();

        let exchanged = service_accounts::exchange(
            &self.db,
            &self.tokens,
            ExchangeRequest {
                key,
                secret: PresentedSecret::parse(SecretKind::ServiceSecret, &body.secret),
                requested,
                lifetime: self.token_lifetime,
                request_id,
            },
            Utc::now(),
        )
        .await
        .inspect_err(|_| {
            metrics::counter!("portcullis_token_exchanges_total", "outcome" => "refused")
                .increment(1)
        })?;
        metrics::counter!("portcullis_token_exchanges_total", "outcome" => "issued").increment(1);
        Ok(Response::new(ExchangeServiceCredentialResponse {
            access_token: exchanged.token.expose_secret().to_owned(),
            expires_at: Some(timestamp(exchanged.expires_at)),
            granted_permissions: exchanged.granted,
            service_session_id: exchanged.session_id.to_string(),
            consistency_token: crate::consistency::token::of_this_request(
                self.tokens.keys(),
                Utc::now(),
            ),
        }))
    }

    async fn revoke_service_token(
        &self,
        request: Request<RevokeServiceTokenRequest>,
    ) -> Result<Response<RevokeServiceTokenResponse>, Status> {
        let caller = caller(&request)?;
        let request_id = request_id(&request);
        match request.into_inner().target {
            Some(Target::Token(token)) => {
                token_field("token", &token)?;
                service_accounts::revoke_by_token(
                    &self.db,
                    &self.tokens,
                    &caller,
                    &token,
                    request_id.as_deref(),
                    Utc::now(),
                )
                .await?;
            }
            Some(Target::ServiceSessionId(id)) => {
                let session = Uuid::parse_str(&id)
                    .map_err(|_| invalid("service_session_id", "must be a UUID"))?;
                service_accounts::revoke_session(
                    &self.db,
                    &self.tokens,
                    &caller,
                    session,
                    request_id.as_deref(),
                )
                .await?;
            }
            None => return Err(invalid("target", "give token or service_session_id")),
        }
        Ok(Response::new(RevokeServiceTokenResponse {}))
    }
}
