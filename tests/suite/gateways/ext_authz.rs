//! Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`)
//! on the gRPC port, called with `CheckRequest`s built as Envoy builds them
//! (no Envoy binary can be installed here).

use std::collections::HashMap;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use portcullis::grpc::ext_authz::{ExtAuthzCallers, ExtAuthzSettings};
use portcullis::tls::ServerTls;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use uuid::Uuid;

use crate::gateways::forward_auth::{Setup, setup_configured};
use crate::support::TestDb;
use crate::support::certs::{TestCa, write};
use crate::support::server::{TestServer, service_token};

async fn setup() -> Setup {
    setup_configured(None, TestDb::new().await, |_| {}).await
}

/// What Envoy sends for `GET <path>` carrying `user_token`, with the route's
/// context extension naming the catalogue's service.
fn envoy_check(path: &str, user_token: Option<&str>) -> CheckRequest {
    let mut headers = HashMap::from([
        (":authority".to_owned(), "payments.example.test".to_owned()),
        (":method".to_owned(), "GET".to_owned()),
        (":path".to_owned(), path.to_owned()),
        ("x-request-id".to_owned(), Uuid::new_v4().to_string()),
        // A client's attempt to name itself, which must not survive.
        ("x-auth-user".to_owned(), Uuid::nil().to_string()),
        ("x-portcullis-user".to_owned(), Uuid::nil().to_string()),
    ]);
    if let Some(token) = user_token {
        headers.insert("authorization".into(), format!("Bearer {token}"));
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "12345".into(),
                    method: "GET".into(),
                    path: path.into(),
                    host: "payments.example.test".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: HashMap::from([(
                "portcullis_service".to_owned(),
                "payment_flow".to_owned(),
            )]),
            ..Default::default()
        }),
    }
}

/// The original request's headers in a `CheckRequest`.
fn original_headers(request: &mut CheckRequest) -> &mut HashMap<String, String> {
    &mut request
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap()
        .headers
}

impl Setup {
    /// A token of a service, as the sidecar's `initial_metadata` carries it.
    fn sidecar_token(&self, permissions: &[&str]) -> String {
        service_token(&self.server.tokens, None, permissions)
    }

    async fn check(
        &self,
        caller: Option<&str>,
        request: CheckRequest,
    ) -> Result<CheckResponse, tonic::Status> {
        check_on(self.server.channel().await, caller, request).await
    }

    async fn check_as_sidecar(&self, request: CheckRequest) -> CheckResponse {
        let sidecar = self.sidecar_token(&["authz.check"]);
        self.check(Some(&sidecar), request).await.unwrap()
    }
}

async fn check_on(
    channel: Channel,
    caller: Option<&str>,
    request: CheckRequest,
) -> Result<CheckResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    if let Some(token) = caller {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    AuthorizationClient::new(channel)
        .check(request)
        .await
        .map(|r| r.into_inner())
}

fn ok_response(answer: &CheckResponse) -> &OkHttpResponse {
    match &answer.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not allowed: {other:?} ({:?})", answer.status),
    }
}

fn denied_response(answer: &CheckResponse) -> &DeniedHttpResponse {
    match &answer.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => denied,
        other => panic!("not denied: {other:?}"),
    }
}

fn added(ok: &OkHttpResponse, name: &str) -> Vec<String> {
    ok.headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .filter(|h| h.key == name)
        .map(|h| h.value.clone())
        .collect()
}

fn reason_in_metadata(answer: &CheckResponse) -> String {
    match answer
        .dynamic_metadata
        .as_ref()
        .and_then(|m| m.fields.get("reason"))
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(reason)) => reason.clone(),
        other => panic!("no reason in dynamic_metadata: {other:?}"),
    }
}

fn ledger(node: Uuid) -> String {
    format!("/ledgers/{node}/entries?page=2")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_request_tells_the_upstream_who_replacing_what_the_client_sent() {
    let s = setup().await;
    let answer = s
        .check_as_sidecar(envoy_check(&ledger(s.a.child), Some(&s.token(&s.a))))
        .await;
    assert_eq!(answer.status.as_ref().unwrap().code, Code::Ok as i32);
    let ok = ok_response(&answer);
    // The platform's names, as forward-auth sends them.
    assert_eq!(added(ok, "x-auth-user"), [s.a.user.to_string()]);
    assert_eq!(added(ok, "x-auth-tenant"), [s.a.tenant.to_string()]);
    assert_eq!(added(ok, "x-auth-groups"), ["role"]);
    assert_eq!(added(ok, "x-auth-reason"), ["allowed"]);
    // Replaced, not appended: Envoy must drop the client's own value.
    let user_header = ok
        .headers
        .iter()
        .find(|h| h.header.as_ref().is_some_and(|h| h.key == "x-auth-user"))
        .unwrap();
    assert_eq!(
        user_header.append_action,
        envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
            as i32
    );
    // The old names are no longer sent, and a client's own are removed.
    assert!(added(ok, "x-portcullis-user").is_empty());
    assert_eq!(
        ok.headers_to_remove,
        [
            "x-portcullis-user",
            "x-portcullis-tenant",
            "x-portcullis-groups",
            "x-portcullis-reason"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_old_header_names_are_sent_beside_the_new_for_one_release_when_asked() {
    let s = setup_configured(None, TestDb::new().await, |settings| {
        settings.ext_authz.legacy_headers = true;
    })
    .await;
    let answer = s
        .check_as_sidecar(envoy_check(&ledger(s.a.child), Some(&s.token(&s.a))))
        .await;
    let ok = ok_response(&answer);
    for (new, old) in [
        ("x-auth-user", "x-portcullis-user"),
        ("x-auth-tenant", "x-portcullis-tenant"),
        ("x-auth-groups", "x-portcullis-groups"),
        ("x-auth-reason", "x-portcullis-reason"),
    ] {
        assert_eq!(added(ok, old), added(ok, new), "{old}");
        assert_eq!(added(ok, old).len(), 1, "{old}");
    }
    assert!(ok.headers_to_remove.is_empty());
    assert_eq!(reason_in_metadata(&answer), "allowed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_is_403_with_a_json_reason_and_permission_denied() {
    let s = setup().await;
    // B's user, about A's node.
    let answer = s
        .check_as_sidecar(envoy_check(&ledger(s.a.child), Some(&s.token(&s.b))))
        .await;
    assert_eq!(
        answer.status.as_ref().unwrap().code,
        Code::PermissionDenied as i32
    );
    let denied = denied_response(&answer);
    assert_eq!(denied.status.as_ref().unwrap().code, 403);
    assert!(denied.body.contains("unknown_org_node"), "{}", denied.body);
    assert_eq!(reason_in_metadata(&answer), "unknown_org_node");
    // A route the catalogue does not list: closed.
    let unlisted = s
        .check_as_sidecar(envoy_check("/ledgers", Some(&s.token(&s.a))))
        .await;
    assert!(
        denied_response(&unlisted)
            .body
            .contains("no_matching_endpoint")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_a_user_token_is_401_with_the_bearer_challenge() {
    let s = setup().await;
    let answer = s
        .check_as_sidecar(envoy_check(&ledger(s.a.child), None))
        .await;
    assert_eq!(
        answer.status.as_ref().unwrap().code,
        Code::Unauthenticated as i32
    );
    let denied = denied_response(&answer);
    assert_eq!(denied.status.as_ref().unwrap().code, 401);
    assert!(denied.headers.iter().any(|h| {
        h.header
            .as_ref()
            .is_some_and(|h| h.key == "www-authenticate" && h.value == "Bearer")
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_caller_must_be_a_service_allowed_to_check() {
    let s = setup().await;
    let request = || envoy_check(&ledger(s.a.child), Some(&s.token(&s.a)));
    let anonymous = s.check(None, request()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let without_permission = s.sidecar_token(&[]);
    let refused = s
        .check(Some(&without_permission), request())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A user's token is not a sidecar's.
    let as_user = s.check(Some(&s.token(&s.a)), request()).await.unwrap_err();
    assert_eq!(as_user.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_without_the_original_request_names_the_missing_field() {
    let s = setup().await;
    let sidecar = s.sidecar_token(&["authz.check"]);
    let error = s
        .check(Some(&sidecar), CheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("attributes.request.http"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_may_come_from_the_host_when_opted_in_and_the_authorization_header_may_be_removed()
 {
    let s = setup_configured(None, TestDb::new().await, |settings| {
        settings
            .gateway
            .services_by_host
            .insert("payments.example.test".into(), "payment_flow".into());
        settings.ext_authz = ExtAuthzSettings {
            callers: ExtAuthzCallers::Token,
            remove_authorization: true,
            service_from_request: true,
            ..ExtAuthzSettings::default()
        };
    })
    .await;
    let mut request = envoy_check(&ledger(s.a.child), Some(&s.token(&s.a)));
    if let Some(attributes) = request.attributes.as_mut() {
        attributes.context_extensions.clear();
    }
    let answer = s.check_as_sidecar(request).await;
    let ok = ok_response(&answer);
    assert_eq!(added(ok, "x-auth-user"), [s.a.user.to_string()]);
    assert!(ok.headers_to_remove.iter().any(|h| h == "authorization"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_opt_in_only_the_routes_context_extension_names_the_service() {
    let s = setup_configured(None, TestDb::new().await, |settings| {
        settings
            .gateway
            .services_by_host
            .insert("payments.example.test".into(), "payment_flow".into());
    })
    .await;
    // The client names the service in a header, and the host maps to it:
    // neither is the route's configuration.
    let mut request = envoy_check(&ledger(s.a.child), Some(&s.token(&s.a)));
    request
        .attributes
        .as_mut()
        .unwrap()
        .context_extensions
        .clear();
    original_headers(&mut request).insert("x-auth-service".into(), "payment_flow".into());
    let answer = s.check_as_sidecar(request).await;
    denied_response(&answer);
    assert_eq!(reason_in_metadata(&answer), "no_service");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_catalogue_entry_the_configured_headers_name_the_capability_and_node() {
    let s = setup_configured(None, TestDb::new().await, |settings| {
        settings.gateway.capability_header = Some("x-portcullis-capability".into());
        settings.gateway.node_header = Some("x-portcullis-node".into());
    })
    .await;
    let capability = format!("test.cap_{}", &s.a.tenant.simple().to_string()[..12]);
    let named = |node: Uuid, capability: &str| {
        let mut request = envoy_check("/reports/monthly", Some(&s.token(&s.a)));
        let headers = original_headers(&mut request);
        headers.insert("x-portcullis-capability".into(), capability.to_owned());
        headers.insert("x-portcullis-node".into(), node.to_string());
        request
    };
    let allowed = s.check_as_sidecar(named(s.a.child, &capability)).await;
    assert_eq!(added(ok_response(&allowed), "x-auth-reason"), ["allowed"]);
    let elsewhere = s.check_as_sidecar(named(s.b.child, &capability)).await;
    assert_eq!(
        denied_response(&elsewhere).status.as_ref().unwrap().code,
        403
    );
    let malformed = s
        .check_as_sidecar(named(s.a.child, "not a capability"))
        .await;
    assert!(
        denied_response(&malformed)
            .body
            .contains("bad_capability_or_node")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_mtls_callers_a_client_certificate_is_the_sidecars_credential() {
    let test = TestDb::new().await;
    let s = setup_configured(None, test, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Mesh CA");
    let identity = ca.server(&["localhost"]);
    let tls = ServerTls::load(
        &write(dir.path(), "server.pem", &identity.cert_pem),
        &write(dir.path(), "server.key", &identity.key_pem),
        Some(&write(dir.path(), "clients.pem", &ca.pem())),
    )
    .unwrap();
    let server = TestServer::build(s.server_db())
        .tokens(s.server.tokens.clone())
        .settings(|settings| {
            settings.tls = Some(tls);
            settings.ext_authz = ExtAuthzSettings {
                callers: ExtAuthzCallers::Mtls,
                ..ExtAuthzSettings::default()
            };
        })
        .start()
        .await;
    let sidecar = ca.client("envoy-sidecar");
    let channel = Channel::from_shared(format!("https://localhost:{}", server.addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.pem()))
                .domain_name("localhost")
                .identity(Identity::from_pem(&sidecar.cert_pem, &sidecar.key_pem)),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    // No service token: the certificate is enough.
    let answer = check_on(
        channel,
        None,
        envoy_check(&ledger(s.a.child), Some(&s.token(&s.a))),
    )
    .await
    .unwrap();
    assert_eq!(
        added(ok_response(&answer), "x-auth-user"),
        [s.a.user.to_string()]
    );
}
