//! Logs never carry a secret or a token, even at the most verbose level.

use portcullis::proto::v1::RevokeServiceTokenRequest;
use portcullis::proto::v1::revoke_service_token_request::Target;
use portcullis::proto::v1::service_credentials_client::ServiceCredentialsClient;

use portcullis::admin::Administrator;
use portcullis::admin::invitations::{self, NewInvitation};
use portcullis::authn::users::{NewUser, create_user};
use portcullis::authn::{Email, HashCost, Login, Passwords};
use portcullis::proto::v1::administration_client::AdministrationClient;
use portcullis::proto::v1::authentication_client::AuthenticationClient;
use portcullis::proto::v1::{
    AcceptInvitationRequest, AuthenticateRequest, OtpChannel, OtpCredentials, OtpPurpose,
    PasswordCredentials, RefreshSessionRequest, RequestOtpRequest, authenticate_request,
    password_credentials,
};
use secrecy::ExposeSecret;

use crate::support::TestDb;
use crate::support::capture::Capture;
use crate::support::server::TestServer;
use crate::support::services::{bearer, create_service, exchange, token_of, verify};

#[test]
fn no_secret_or_token_reaches_the_logs() {
    let _alone = crate::support::SCOPED_SUBSCRIBER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Set-up (template, service account) outside the captured section.
    let setup = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let test = setup.block_on(TestDb::new());
    let service = setup.block_on(create_service(&test.db(), None, &["tokens.verify"]));
    let world = setup.block_on(crate::support::fixtures::populate(&test.db()));
    let password = "a password nobody should ever see";
    let email = "logged@example.test";
    setup.block_on(async {
        let passwords = Passwords::new(
            HashCost::INSECURE_FAST_FOR_TESTS,
            1,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let new = NewUser {
            tenant_id: world.tenant,
            display_name: "Logged".into(),
            logins: vec![Login::Email(Email::parse(email).unwrap())],
            password: Some(portcullis::names::NewPassword::parse(password).unwrap()),
        };
        create_user(&test.db(), &passwords, &new).await.unwrap();
    });

    // Everything below runs on this one thread, so a thread-local subscriber
    // sees the server's logs as well as the client's.
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (token, session, code, invite) = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let server = TestServer::start(test.db()).await;
            let channel = server.channel().await;
            let mut auth = AuthenticationClient::new(channel.clone());
            let login = |secret: authenticate_request::Method| AuthenticateRequest {
                tenant_id: world.tenant.to_string(),
                method: Some(secret),
            };
            let session = auth
                .authenticate(login(authenticate_request::Method::Password(
                    PasswordCredentials {
                        login: Some(password_credentials::Login::Email(email.into())),
                        password: password.into(),
                    },
                )))
                .await
                .unwrap()
                .into_inner();
            auth.refresh_session(RefreshSessionRequest {
                refresh_token: session.refresh_token.clone(),
            })
            .await
            .unwrap();
            auth.request_otp(RequestOtpRequest {
                tenant_id: world.tenant.to_string(),
                destination: email.into(),
                channel: OtpChannel::Email as i32,
                purpose: OtpPurpose::Login as i32,
            })
            .await
            .unwrap();
            let code = outbox_code(&test.db(), world.tenant).await;
            auth.authenticate(login(authenticate_request::Method::Otp(OtpCredentials {
                destination: email.into(),
                code: code.clone(),
            })))
            .await
            .unwrap();
            let token = token_of(&channel, &service).await.access_token;
            assert!(verify(&channel, &token, &token).await.unwrap().active);
            exchange(
                &channel,
                service.key.as_str(),
                &format!("{}x", service.secret),
                &[],
            )
            .await
            .unwrap_err();
            ServiceCredentialsClient::new(channel.clone())
                .revoke_service_token(bearer(
                    RevokeServiceTokenRequest {
                        target: Some(Target::Token(token.clone())),
                    },
                    &token,
                ))
                .await
                .unwrap();
            let invited = NewInvitation {
                destination: Login::Email(Email::parse("invited@example.test").unwrap()),
                role_id: world.role,
                org_node_id: world.child.into(),
                expires_at: None,
            };
            let admin = Administrator::operator(world.tenant.into(), chrono::Utc::now());
            let issued = invitations::create(&test.db(), &admin, &invited, None)
                .await
                .unwrap();
            let invite = issued.token.unwrap().expose_secret().to_owned();
            AdministrationClient::new(channel.clone())
                .accept_invitation(AcceptInvitationRequest {
                    invite_token: invite.clone(),
                    password: password.into(),
                    display_name: String::new(),
                })
                .await
                .unwrap();
            (token, session, code, invite)
        })
    });

    let logs = capture.text();
    assert!(
        logs.lines().count() > 50,
        "the capture caught nothing:\n{logs}"
    );
    let secret_random = &service.secret[36..];
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(secret_random), "a service secret was logged");
    assert!(!logs.contains(&invite[37..]), "an invite token was logged");
    assert!(!logs.contains(signature), "an access token was logged");
    assert!(!logs.contains(password), "a password was logged");
    assert!(
        !logs.contains(&session.refresh_token[37..]),
        "a refresh token was logged"
    );
    assert!(
        !logs.contains(session.access_token.rsplit('.').next().unwrap()),
        "a user token was logged"
    );
    assert!(
        !logs.contains(&format!("\"{code}\"")) && !logs.contains(&format!("={code}")),
        "a one-time code was logged"
    );
}

async fn outbox_code(db: &portcullis::db::Db, tenant: uuid::Uuid) -> String {
    use diesel_async::RunQueryDsl;
    use scoped_futures::ScopedFutureExt;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        code: String,
    }
    db.read(&portcullis::db::RlsContext::tenant(tenant), |conn| {
        async move {
            let row: Row = diesel::sql_query(
                "SELECT code FROM auth.otp_outbox ORDER BY created_at DESC LIMIT 1",
            )
            .get_result(conn)
            .await?;
            Ok::<_, portcullis::db::DbError>(row.code)
        }
        .scope_boxed()
    })
    .await
    .unwrap()
}
