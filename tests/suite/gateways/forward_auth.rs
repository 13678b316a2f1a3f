//! `/forward-auth`: asked directly with each gateway's conventions, and
//! behind a real nginx `auth_request` in front of an upstream that echoes
//! the headers it receives.

use std::time::Duration;

use chrono::Utc;
use portcullis::app::ServerSettings;
use portcullis::authz::gatekeeper::GatewaySettings;
use portcullis::db::{Db, RlsContext};
use portcullis::http::ForwardAuthMode;
use portcullis::tokens::{NewToken, TokenType};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::support::TestDb;
use crate::support::fixtures::{TenantWorld, execute, populate};
use crate::support::ports::unused_port;
use crate::support::server::{
    TestServer, refused_at_start, service_token, test_settings, user_token,
};

pub(crate) struct Setup {
    /// Dropped with the setup: the database the server uses.
    _test: TestDb,
    pub(crate) server: TestServer,
    /// Where /forward-auth answers.
    http: String,
    pub(crate) a: TenantWorld,
    pub(crate) b: TenantWorld,
}

/// reqwest's rustls wants a process-wide provider; ring is ours.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A catalogue entry: `method` on payment_flow's ledger entries needs
/// tenant A's test capability at the node the path names. Every test asks
/// about `GET`.
pub(crate) async fn catalogue(db: &Db, a: &TenantWorld, method: &str) {
    let capability = format!("test.cap_{}", &a.tenant.simple().to_string()[..12]);
    execute(
        db,
        &RlsContext::operator(),
        &format!(
            "INSERT INTO auth.endpoint_policy (service_key, method_code, route_pattern, capability, \
             node_source_code, node_source_name) VALUES \
             ('payment_flow', '{method}', '/ledgers/{{node_id}}/entries', '{capability}', 'path', 'node_id')"
        ),
    )
    .await
    .unwrap();
}

async fn setup_with(db_for_server: Option<Db>, test: TestDb) -> Setup {
    setup_configured(db_for_server, test, |_| {}).await
}

pub(crate) async fn setup_configured(
    db_for_server: Option<Db>,
    test: TestDb,
    configure: impl FnOnce(&mut ServerSettings),
) -> Setup {
    let db = test.db();
    let (a, b) = (populate(&db).await, populate(&db).await);
    catalogue(&db, &a, "GET").await;
    let server = TestServer::build(db_for_server.unwrap_or(db))
        .settings(configure)
        .forward_auth()
        .start()
        .await;
    Setup {
        _test: test,
        http: server.forward_auth.clone().unwrap(),
        server,
        a,
        b,
    }
}

async fn setup() -> Setup {
    setup_with(None, TestDb::new().await).await
}

impl Setup {
    /// The database the setup's server uses, for a second server on it.
    pub(crate) fn server_db(&self) -> Db {
        self._test.db()
    }

    pub(crate) fn token(&self, world: &TenantWorld) -> String {
        user_token(&self.server.tokens, world.tenant, world.user)
    }

    /// Asks as nginx's auth_request does.
    async fn ask(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = client()
            .get(format!("http://{}/forward-auth", self.http))
            .header("x-original-method", "GET")
            .header("x-original-uri", path)
            .header("x-auth-service", "payment_flow");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn ledger(node: Uuid) -> String {
    format!("/ledgers/{node}/entries?page=1")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_request_passes_with_who_and_which_roles() {
    let s = setup().await;
    let answer = s.ask(Some(&s.token(&s.a)), &ledger(s.a.child)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(header(&answer, "x-auth-user"), s.a.user.to_string());
    assert_eq!(header(&answer, "x-auth-tenant"), s.a.tenant.to_string());
    assert_eq!(header(&answer, "x-auth-groups"), "role");
    assert_eq!(header(&answer, "x-auth-reason"), "allowed");
}

/// The middle of a JWT, unverified.
fn payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let middle = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(middle)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

async fn minting_for_payment_flow(lifetime: Duration) -> Setup {
    setup_configured(None, TestDb::new().await, |settings| {
        let gateway = &mut settings.gateway;
        gateway
            .upstream_token_services
            .insert("payment_flow".into());
        gateway.upstream_token_lifetime = lifetime;
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_configured_for_it_gets_a_token_for_the_one_request() {
    let s = minting_for_payment_flow(Duration::from_secs(60)).await;
    let user_token = s.token(&s.a);
    let answer = s.ask(Some(&user_token), &ledger(s.a.child)).await;
    assert_eq!(answer.status(), 200);
    let minted = header(&answer, "x-auth-token");
    let jwks = s.server.tokens.keys().jwks_json(Utc::now());
    // PostgREST configured with the service as its audience accepts it.
    let claims = crate::gateways::postgrest::verify_for_audience(&jwks, &minted, "payment_flow")
        .expect("verifies");
    assert_eq!(claims["sub"], s.a.user.to_string());
    assert_eq!(claims["tid"], s.a.tenant.to_string());
    assert_eq!(claims["sid"], payload(&user_token)["sid"]);
    assert_eq!(claims["role"], "api_user");
    assert_eq!(claims["req_method"], "GET");
    assert_eq!(
        claims["req_path"],
        format!("/ledgers/{}/entries", s.a.child)
    );
    assert_eq!(claims["org_node_id"], s.a.child.to_string());
    assert!(
        claims["capability"]
            .as_str()
            .unwrap()
            .starts_with("test.cap_")
    );
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime <= 60, "{lifetime}");
    // Portcullis itself refuses it: its audience is another's.
    assert!(s.server.tokens.verify(&minted, Utc::now()).is_err());
    let relayed = s.ask(Some(&minted), &ledger(s.a.child)).await;
    assert_eq!(relayed.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_token_never_outlives_the_users_own() {
    let s = minting_for_payment_flow(Duration::from_secs(300)).await;
    let user_token = s
        .server
        .tokens
        .issue(
            &NewToken {
                typ: TokenType::User,
                subject: s.a.user,
                tenant: Some(s.a.tenant),
                session: Uuid::new_v4(),
                permissions: Vec::new(),
                lifetime: Duration::from_secs(120),
                service_key: None,
            },
            Utc::now(),
        )
        .unwrap()
        .token
        .expose_secret()
        .to_owned();
    let answer = s.ask(Some(&user_token), &ledger(s.a.child)).await;
    let minted = payload(&header(&answer, "x-auth-token"));
    let own = payload(&user_token);
    let own_exp = own["exp"].as_i64().unwrap();
    assert_eq!(minted["exp"].as_i64().unwrap(), own_exp);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_is_minted_for_a_denial_or_a_service_not_configured_for_it() {
    let minting = minting_for_payment_flow(Duration::from_secs(60)).await;
    let denied = minting
        .ask(Some(&minting.token(&minting.b)), &ledger(minting.a.child))
        .await;
    assert_eq!(denied.status(), 403);
    assert!(denied.headers().get("x-auth-token").is_none());
    let plain = setup().await;
    let allowed = plain
        .ask(Some(&plain.token(&plain.a)), &ledger(plain.a.child))
        .await;
    assert_eq!(allowed.status(), 200);
    assert!(allowed.headers().get("x-auth-token").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_is_403_with_its_reason_and_a_route_without_an_entry_is_denied() {
    let s = setup().await;
    // B's user, about A's node: like a node that does not exist.
    let denied = s.ask(Some(&s.token(&s.b)), &ledger(s.a.child)).await;
    assert_eq!(denied.status(), 403);
    assert!(denied.text().await.unwrap().contains("unknown_org_node"));
    let unlisted = s.ask(Some(&s.token(&s.a)), "/ledgers").await;
    assert_eq!(unlisted.status(), 403);
    assert!(
        unlisted
            .text()
            .await
            .unwrap()
            .contains("no_matching_endpoint")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bad_or_service_token_is_401_with_the_bearer_challenge() {
    let s = setup().await;
    let service_token = service_token(&s.server.tokens, Some(s.a.tenant), &[]);
    for token in [None, Some("not-a-token"), Some(service_token.as_str())] {
        let answer = s.ask(token, &ledger(s.a.child)).await;
        assert_eq!(answer.status(), 401, "{token:?}");
        assert_eq!(header(&answer, "www-authenticate"), "Bearer");
    }
}

/// The host the catalogue maps to payment_flow in the tests that map one.
const PAYMENTS_HOST: &str = "payments.example.test";

fn mapping_payments_host(gateway: &mut GatewaySettings) {
    gateway
        .services_by_host
        .insert(PAYMENTS_HOST.into(), "payment_flow".into());
}

async fn in_mode(mode: ForwardAuthMode) -> Setup {
    setup_configured(None, TestDb::new().await, |settings| {
        settings.forward_auth.mode = mode;
        if mode == ForwardAuthMode::Traefik {
            mapping_payments_host(&mut settings.gateway);
        }
    })
    .await
}

impl Setup {
    /// `method path` as the mode's gateway sends it, with the other
    /// conventions' headers naming `decoy_method path` (a client's own
    /// headers, which Traefik copies and nginx passes on).
    async fn ask_in_mode(
        &self,
        mode: ForwardAuthMode,
        method: &str,
        path: &str,
        decoy_method: &str,
    ) -> reqwest::Response {
        let token = format!("Bearer {}", self.token(&self.a));
        let nginx = [("x-original-method", method), ("x-original-uri", path)];
        let traefik = [
            ("x-forwarded-method", method),
            ("x-forwarded-uri", path),
            ("x-forwarded-host", PAYMENTS_HOST),
        ];
        let decoys = |headers: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            headers
                .iter()
                .map(|(name, value)| {
                    let value = if name.ends_with("method") {
                        decoy_method
                    } else {
                        value
                    };
                    (*name, value.to_owned())
                })
                .collect()
        };
        let (request_method, url, own, other) = match mode {
            ForwardAuthMode::Nginx => (
                decoy_method,
                format!("http://{}/forward-auth", self.http),
                nginx
                    .iter()
                    .map(|(n, v)| (*n, (*v).to_owned()))
                    .collect::<Vec<_>>(),
                decoys(&traefik),
            ),
            ForwardAuthMode::Traefik => (
                decoy_method,
                format!("http://{}/forward-auth", self.http),
                traefik.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
                decoys(&nginx),
            ),
            ForwardAuthMode::Envoy => (
                method,
                format!("http://{}/forward-auth{path}", self.http),
                Vec::new(),
                [decoys(&nginx), decoys(&traefik)].concat(),
            ),
        };
        let mut request = client()
            .request(request_method.parse().unwrap(), url)
            .header("authorization", token);
        if mode != ForwardAuthMode::Traefik {
            request = request.header("x-auth-service", "payment_flow");
        }
        for (name, value) in own.into_iter().chain(other) {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_forward_auth_mode_decides_on_its_own_conventions_request_whatever_else_is_sent() {
    for mode in [
        ForwardAuthMode::Nginx,
        ForwardAuthMode::Traefik,
        ForwardAuthMode::Envoy,
    ] {
        let s = in_mode(mode).await;
        let path = format!("/ledgers/{}/entries", s.a.child);
        // The real request is a DELETE, which no entry allows; the other
        // conventions' headers claim a GET, which would be allowed.
        let substituted = s.ask_in_mode(mode, "DELETE", &path, "GET").await;
        assert_eq!(substituted.status(), 403, "{mode:?}");
        assert!(header(&substituted, "x-auth-user").is_empty(), "{mode:?}");
        // The real GET passes whatever DELETE the others claim.
        let real = s.ask_in_mode(mode, "GET", &path, "DELETE").await;
        assert_eq!(real.status(), 200, "{mode:?}");
        assert_eq!(header(&real, "x-auth-user"), s.a.user.to_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mode_whose_own_convention_is_missing_refuses_rather_than_reading_another() {
    let token = |s: &Setup| format!("Bearer {}", s.token(&s.a));
    let traefik = in_mode(ForwardAuthMode::Traefik).await;
    let answer = client()
        .get(format!("http://{}/forward-auth", traefik.http))
        .header("x-original-method", "GET")
        .header("x-original-uri", ledger(traefik.a.child))
        .header("x-forwarded-host", PAYMENTS_HOST)
        .header("authorization", token(&traefik))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("original_request_not_given")
    );
    // nginx calls the one address it is configured with: a path after
    // /forward-auth is Envoy's form, not nginx's.
    let nginx = in_mode(ForwardAuthMode::Nginx).await;
    let answer = client()
        .get(format!(
            "http://{}/forward-auth{}",
            nginx.http,
            ledger(nginx.a.child)
        ))
        .header("x-auth-service", "payment_flow")
        .header("authorization", token(&nginx))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn capability_and_node_headers_cannot_be_configured_with_traefik() {
    let test = TestDb::new().await;
    let mut settings = test_settings();
    settings.forward_auth.mode = ForwardAuthMode::Traefik;
    settings.gateway.capability_header = Some("x-portcullis-capability".into());
    settings.gateway.node_header = Some("x-portcullis-node".into());
    let error = refused_at_start(test.db(), settings).await;
    assert!(error.contains("traefik"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_host_mapping_no_request_header_names_the_service() {
    let s = setup_configured(None, TestDb::new().await, |settings| {
        let gateway = &mut settings.gateway;
        mapping_payments_host(gateway);
        gateway
            .upstream_token_services
            .extend(["payment_flow".to_owned(), "ledger_admin".to_owned()]);
    })
    .await;
    let ask = |host: &str, named: &str| {
        client()
            .get(format!("http://{}/forward-auth", s.http))
            .header("host", host)
            .header("x-original-method", "GET")
            .header("x-original-uri", ledger(s.a.child))
            .header("x-auth-service", named)
            .header("authorization", format!("Bearer {}", s.token(&s.a)))
            .send()
    };
    // The mapped host decides, whatever the client names.
    let mapped = ask(PAYMENTS_HOST, "ledger_admin").await.unwrap();
    assert_eq!(mapped.status(), 200);
    let minted = payload(&header(&mapped, "x-auth-token"));
    assert_eq!(minted["aud"], "payment_flow");
    // An unmapped host is no service, even when the header names one.
    let unmapped = ask("elsewhere.example.test", "payment_flow").await.unwrap();
    assert_eq!(unmapped.status(), 403);
    assert!(unmapped.text().await.unwrap().contains("no_service"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_alone_passes_no_cross_site_request_that_changes_something() {
    let s = setup_configured(None, TestDb::new().await, |settings| {
        settings.forward_auth.token_cookie = Some("portcullis_token".into());
    })
    .await;
    catalogue(&s.server_db(), &s.a, "POST").await;
    let post = |site: Option<&str>, origin: Option<&str>| {
        let mut request = client()
            .get(format!("http://{}/forward-auth", s.http))
            .header("host", PAYMENTS_HOST)
            .header("x-original-method", "POST")
            .header("x-original-uri", ledger(s.a.child))
            .header("x-auth-service", "payment_flow")
            .header("cookie", format!("portcullis_token={}", s.token(&s.a)));
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for (site, origin) in [
        (Some("cross-site"), None),
        (Some("none"), None),
        (None, Some("https://evil.example.test")),
        (None, None),
    ] {
        let refused = post(site, origin).await.unwrap();
        assert_eq!(refused.status(), 403, "{site:?} {origin:?}");
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("cross_site_cookie_request")
        );
    }
    for (site, origin) in [
        (Some("same-origin"), None),
        (Some("same-site"), None),
        (None, Some("https://payments.example.test")),
    ] {
        let passed = post(site, origin).await.unwrap();
        assert_eq!(passed.status(), 200, "{site:?} {origin:?}");
    }
    // A safe method passes on the cookie alone.
    let read = client()
        .get(format!("http://{}/forward-auth", s.http))
        .header("x-original-method", "GET")
        .header("x-original-uri", ledger(s.a.child))
        .header("x-auth-service", "payment_flow")
        .header("cookie", format!("portcullis_token={}", s.token(&s.a)))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_is_503_never_an_allow() {
    let test = TestDb::new().await;
    let (proxy, through_proxy) = test.db_behind_proxy().await;
    let s = setup_with(Some(through_proxy), test).await;
    let token = s.token(&s.a);
    assert_eq!(s.ask(Some(&token), &ledger(s.a.child)).await.status(), 200);
    proxy.cut();
    let answer = s.ask(Some(&token), &ledger(s.a.child)).await;
    assert_eq!(answer.status(), 503);
    assert!(header(&answer, "x-auth-user").is_empty());
}

// --- Behind nginx ----------------------------------------------------------

/// nginx, when this machine has it. CI installs it and requires the test
/// (`PORTCULLIS_TEST_NGINX_REQUIRED`); elsewhere the test says it skipped.
fn nginx() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PORTCULLIS_TEST_NGINX")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
                .into_iter()
                .map(std::path::PathBuf::from)
                .find(|p| p.exists())
        });
    if found.is_none() && std::env::var_os("PORTCULLIS_TEST_NGINX_REQUIRED").is_some() {
        panic!("nginx is required here: apt-get install nginx-light");
    }
    found
}

/// An upstream that answers every request with the headers it received.
async fn echo_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        headers
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or_default()))
            .collect::<String>()
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(binary: &std::path::Path, portcullis: &str, upstream: u16) -> Nginx {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = unused_port();
    let d = dir.path().display();
    let conf = format!(
        r#"worker_processes 1;
daemon off;
# One process: killing it leaves no worker behind.
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /_portcullis {{
            internal;
            proxy_pass http://{portcullis}/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Auth-Service payment_flow;
        }}
        location / {{
            auth_request /_portcullis;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            auth_request_set $auth_groups $upstream_http_x_auth_groups;
            proxy_set_header X-Auth-User $auth_user;
            proxy_set_header X-Auth-Groups $auth_groups;
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Nginx {
        child,
        _dir: dir,
        port,
    }
}

async fn through_nginx(nginx: &Nginx, token: Option<&str>, path: &str) -> (u16, String) {
    let mut request = client().get(format!("http://127.0.0.1:{}{path}", nginx.port));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for _ in 0..50 {
        if let Ok(response) = request.try_clone().unwrap().send().await {
            let status = response.status().as_u16();
            return (status, response.text().await.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nginx did not answer");
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_only_what_the_catalogue_allows_reaches_the_upstream() {
    let Some(binary) = nginx() else {
        eprintln!("skipped: nginx is not installed (CI installs it and requires this test)");
        return;
    };
    let s = setup().await;
    let upstream = echo_upstream().await;
    let nginx = start_nginx(&binary, &s.http, upstream);
    let path = format!("/ledgers/{}/entries", s.a.child);

    let (status, body) = through_nginx(&nginx, Some(&s.token(&s.a)), &path).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("x-auth-user: {}", s.a.user)),
        "{body}"
    );
    assert!(body.contains("x-auth-groups: role"), "{body}");
    let (status, body) = through_nginx(&nginx, Some(&s.token(&s.b)), &path).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("x-auth-user"));
    assert_eq!(through_nginx(&nginx, None, &path).await.0, 401);
    assert_eq!(
        through_nginx(&nginx, Some(&s.token(&s.a)), "/no/entry/here")
            .await
            .0,
        403
    );
    // Portcullis gone: nginx answers an error, never the upstream.
    let token = s.token(&s.a);
    s.server.stop().await.unwrap();
    let (status, body) = through_nginx(&nginx, Some(&token), &path).await;
    assert!(status >= 500, "{status}: {body}");
    assert!(!body.contains("x-auth-user"), "{body}");
}
