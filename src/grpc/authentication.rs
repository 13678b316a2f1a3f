//! `portcullis.v1.Authentication`: login, sessions, codes, token
//! verification and signing keys.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use secrecy::ExposeSecret;
use tonic::{Request, Response, Status};

use super::fields::{
    code_field, destination_field, id_token_field, new_password_field, parse_id, parse_uuid,
    password_field, refresh_token_field, token_field,
};
use super::request::{caller, client_address, invalid, request_id, timestamp};
use crate::authn::{
    Authenticator, Channel, ClientInfo, Email, Login, Phone, Purpose, SessionScope, SessionTokens,
};
use crate::proto::v1 as pb;
use crate::proto::v1::authentication_server::Authentication;
use crate::tokens::Principal;

const MAX_USER_AGENT_LEN: usize = 256;
const MAX_NONCE_LEN: usize = 256;

pub struct AuthenticationService {
    authn: Arc<Authenticator>,
    /// Proxies in front of us that append to `x-forwarded-for` (0: take
    /// the TCP peer).
    trusted_proxy_hops: usize,
}

impl AuthenticationService {
    pub fn new(authn: Arc<Authenticator>, trusted_proxy_hops: usize) -> Self {
        Self {
            authn,
            trusted_proxy_hops,
        }
    }

    fn client<T>(&self, request: &Request<T>) -> ClientInfo {
        ClientInfo {
            user_agent: request
                .metadata()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(MAX_USER_AGENT_LEN).collect()),
            address: client_address(request, self.trusted_proxy_hops),
        }
    }
}

fn session_response(tokens: SessionTokens) -> pb::AuthenticateResponse {
    pb::AuthenticateResponse {
        access_token: tokens.access_token.expose_secret().to_owned(),
        refresh_token: tokens.refresh_token.expose_secret().to_owned(),
        access_expires_at: Some(timestamp(tokens.access_expires_at)),
        refresh_expires_at: Some(timestamp(tokens.refresh_expires_at)),
        session_id: tokens.session_id.to_string(),
        user_id: tokens.user_id.to_string(),
        tenant_id: tokens.tenant_id.to_string(),
    }
}

#[tonic::async_trait]
impl Authentication for AuthenticationService {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let (client, request_id) = (self.client(&request), request_id(&request));
        let body = request.into_inner();
        let tenant = parse_id("tenant_id", &body.tenant_id)?;
        let now = Utc::now();
        let tokens = match body.method {
            Some(pb::authenticate_request::Method::Password(credentials)) => {
                let login = match &credentials.login {
                    Some(pb::password_credentials::Login::Email(email)) => {
                        Login::Email(Email::parse(email).map_err(|e| invalid("password.email", e))?)
                    }
                    Some(pb::password_credentials::Login::PhoneE164(phone)) => Login::Phone(
                        Phone::parse(phone).map_err(|e| invalid("password.phone_e164", e))?,
                    ),
                    None => return Err(invalid("password", "give email or phone_e164")),
                };
                let password = password_field("password.password", &credentials.password)?;
                self.authn
                    .authenticate_password(
                        tenant,
                        &login,
                        &password,
                        &client,
                        request_id.as_deref(),
                        now,
                    )
                    .await?
            }
            Some(pb::authenticate_request::Method::Otp(credentials)) => {
                let destination = destination_field("otp.destination", &credentials.destination)?;
                let code = code_field("otp.code", &credentials.code)?;
                self.authn
                    .authenticate_otp(
                        tenant,
                        &destination,
                        &code,
                        &client,
                        request_id.as_deref(),
                        now,
                    )
                    .await?
            }
            Some(pb::authenticate_request::Method::Oidc(credentials)) => {
                let id_token = id_token_field("oidc.id_token", &credentials.id_token)?;
                if credentials.nonce.len() > MAX_NONCE_LEN {
                    return Err(invalid(
                        "oidc.nonce",
                        format!("is longer than {MAX_NONCE_LEN} characters"),
                    ));
                }
                let nonce = Some(credentials.nonce.as_str()).filter(|n| !n.is_empty());
                self.authn
                    .authenticate_federated(
                        tenant,
                        &id_token,
                        nonce,
                        &client,
                        request_id.as_deref(),
                        now,
                    )
                    .await?
            }
            None => return Err(invalid("method", "give password, otp or oidc")),
        };
        Ok(Response::new(session_response(tokens)))
    }

    async fn request_otp(
        &self,
        request: Request<pb::RequestOtpRequest>,
    ) -> Result<Response<pb::RequestOtpResponse>, Status> {
        let request_id = request_id(&request);
        let client = self.client(&request);
        let body = request.into_inner();
        let tenant = parse_id("tenant_id", &body.tenant_id)?;
        let destination = destination_field("destination", &body.destination)?;
        let channel = match body.channel() {
            pb::OtpChannel::Unspecified => return Err(invalid("channel", "is required")),
            pb::OtpChannel::Email => Channel::Email,
            pb::OtpChannel::Sms => Channel::Sms,
            pb::OtpChannel::Whatsapp => Channel::Whatsapp,
        };
        if !channel.reaches(&destination) {
            return Err(invalid(
                "channel",
                format!("{} cannot reach {}", channel.as_str(), destination.kind()),
            ));
        }
        let purpose = match body.purpose() {
            pb::OtpPurpose::Unspecified => return Err(invalid("purpose", "is required")),
            pb::OtpPurpose::Login => Purpose::Login,
            pb::OtpPurpose::VerifyEmail => Purpose::VerifyEmail,
            pb::OtpPurpose::VerifyPhone => Purpose::VerifyPhone,
            pb::OtpPurpose::ResetPassword => Purpose::ResetPassword,
        };
        let issued = self
            .authn
            .request_otp(
                tenant,
                &destination,
                channel,
                purpose,
                &client,
                request_id.as_deref(),
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::RequestOtpResponse {
            otp_id: issued.otp_id.to_string(),
            expires_at: Some(timestamp(issued.expires_at)),
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let request_id = request_id(&request);
        let token = request.into_inner().refresh_token;
        refresh_token_field("refresh_token", &token)?;
        let tokens = self
            .authn
            .refresh(&token, request_id.as_deref(), Utc::now())
            .await?;
        Ok(Response::new(session_response(tokens)))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let caller = request.extensions().get::<Principal>().cloned();
        let request_id = request_id(&request);
        let now = Utc::now();
        match request.into_inner().target {
            Some(pb::revoke_session_request::Target::RefreshToken(token)) => {
                refresh_token_field("refresh_token", &token)?;
                self.authn
                    .revoke_by_refresh_token(&token, request_id.as_deref(), now)
                    .await?;
            }
            Some(pb::revoke_session_request::Target::SessionId(id)) => {
                let session = parse_uuid("session_id", &id)?;
                let Some(caller) = caller else {
                    return Err(super::access::unauthenticated());
                };
                let scope = SessionScope::for_caller(&caller)?;
                self.authn
                    .revoke_by_id(scope, session, request_id.as_deref(), now)
                    .await?;
            }
            None => return Err(invalid("target", "give session_id or refresh_token")),
        }
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let request_id = request_id(&request);
        let client = self.client(&request);
        let body = request.into_inner();
        let tenant = parse_id("tenant_id", &body.tenant_id)?;
        let destination = destination_field("destination", &body.destination)?;
        let code = code_field("code", &body.code)?;
        let password = new_password_field("new_password", &body.new_password)?;
        self.authn
            .reset_password(
                tenant,
                &destination,
                &code,
                &password,
                &client,
                request_id.as_deref(),
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    /// Introspection: an unusable token is `active = false`, not an error.
    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let caller = caller(&request)?;
        let token = request.into_inner().token;
        token_field("token", &token)?;
        let Ok(verified) = self.authn.tokens.verify(&token, Utc::now()) else {
            return Ok(Response::new(pb::VerifyTokenResponse::default()));
        };
        if !caller.may_inspect(&verified.principal) {
            return Err(super::error_details::detailed(
                "the token belongs to another tenant",
                super::reason::Reason::TenantForbidden,
                &[],
                None,
            ));
        }
        let claims = verified.claims;
        Ok(Response::new(pb::VerifyTokenResponse {
            active: true,
            token_type: match claims.typ {
                crate::tokens::TokenType::User => pb::TokenType::User,
                crate::tokens::TokenType::Service => pb::TokenType::Service,
            } as i32,
            subject_id: claims.sub,
            tenant_id: claims.tid.unwrap_or_default(),
            session_id: claims.sid,
            permissions: claims.perms,
            expires_at: Utc.timestamp_opt(claims.exp, 0).single().map(timestamp),
        }))
    }

    async fn issue_sql_assertion(
        &self,
        request: Request<pb::IssueSqlAssertionRequest>,
    ) -> Result<Response<pb::IssueSqlAssertionResponse>, Status> {
        let request_id = request_id(&request);
        let token = request.into_inner().access_token;
        token_field("access_token", &token)?;
        let issued = self
            .authn
            .issue_sql_assertion(&token, request_id.as_deref(), Utc::now())
            .await?;
        Ok(Response::new(pb::IssueSqlAssertionResponse {
            assertion: issued.assertion.expose_secret().to_owned(),
            expires_at: Some(timestamp(issued.expires_at)),
            tenant_id: issued.tenant_id.to_string(),
            user_id: issued.user_id.to_string(),
        }))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<pb::GetSigningKeysRequest>,
    ) -> Result<Response<pb::GetSigningKeysResponse>, Status> {
        let now = Utc::now();
        let keys = self.authn.tokens.keys();
        Ok(Response::new(pb::GetSigningKeysResponse {
            jwks_json: keys.jwks_json(now),
            keys: keys
                .published(now)
                .into_iter()
                .map(|k| pb::SigningKey {
                    kid: k.kid,
                    public_key: k.public_key,
                    not_after: k.not_after.map(timestamp),
                })
                .collect(),
        }))
    }
}
