//! From request messages to the callers and values the domain takes.

use tonic::{Request, Status};

use super::super::fields::{new_password_field, parse_id, token_field};
use super::super::request::{caller, invalid, request_id};
use crate::admin::global::GlobalAdministrator;
use crate::admin::invitations::Acceptance;
use crate::admin::users::CreateUser;
use crate::admin::{AdminError, Administrator, Cursor, Label};
use crate::authn::{Email, Login, Phone};
use crate::proto::v1 as pb;
use crate::secrets::{PresentedSecret, SecretKind};

/// The caller, acting in the request's tenant.
pub(super) fn administrator<T>(
    request: &Request<T>,
    tenant_id: &str,
) -> Result<Administrator, Status> {
    let tenant = parse_id("tenant_id", tenant_id)?;
    Ok(Administrator::in_tenant(
        caller(request)?,
        tenant,
        request_id(request),
        chrono::Utc::now(),
    )?)
}

pub(super) fn global_administrator<T>(request: &Request<T>) -> Result<GlobalAdministrator, Status> {
    Ok(GlobalAdministrator::from_principal(
        &caller(request)?,
        request_id(request),
        chrono::Utc::now(),
    )?)
}

/// A listing's page token: none when empty.
pub(super) fn cursor(page_token: &str) -> Result<Option<Cursor>, Status> {
    match page_token {
        "" => Ok(None),
        token => Ok(Some(Cursor::decode(token)?)),
    }
}

/// A new user: display name, email and/or phone, optional password.
pub(super) fn new_user(body: &pb::CreateUserRequest) -> Result<CreateUser, Status> {
    let display_name = Label::parse(&body.display_name).map_err(|e| invalid("display_name", e))?;
    let mut logins = Vec::new();
    if !body.email.is_empty() {
        logins.push(Login::Email(
            Email::parse(&body.email).map_err(|e| invalid("email", e))?,
        ));
    }
    if !body.phone.is_empty() {
        logins.push(Login::Phone(
            Phone::parse(&body.phone).map_err(|e| invalid("phone", e))?,
        ));
    }
    let password = match body.password.as_str() {
        "" => None,
        password => Some(new_password_field("password", password)?),
    };
    Ok(CreateUser {
        display_name,
        logins,
        password,
    })
}

/// What an invitee sends: the token (a malformed one is refused like a
/// wrong one), a password and an optional display name.
pub(super) fn acceptance(
    body: pb::AcceptInvitationRequest,
    request_id: Option<String>,
    client_address: Option<String>,
) -> Result<Acceptance, Status> {
    let raw = token_field("invite_token", &body.invite_token)?;
    // A malformed token gets the answer of a wrong one.
    let token = PresentedSecret::parse(SecretKind::InviteToken, raw)
        .ok_or_else(|| Status::from(AdminError::UnusableInvitation))?;
    let password = new_password_field("password", &body.password)?;
    let display_name = match body.display_name.as_str() {
        "" => None,
        name => Some(Label::parse(name).map_err(|e| invalid("display_name", e))?),
    };
    Ok(Acceptance {
        token,
        password,
        display_name,
        request_id,
        client_address,
    })
}
