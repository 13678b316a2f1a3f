//! Tenants and the capability catalogue: global administrators only.

use portcullis::proto::v1::{
    CreateCapabilityRequest, CreateTenantRequest, DecisionReason, ListCapabilitiesRequest,
    RenameTenantRequest, Tenant, TenantRef,
};
use tonic::{Code, Status};
use uuid::Uuid;

use super::{Setup, setup};
use crate::support::server::test_settings;
use crate::support::services::{bearer, create_service, token_of};

impl Setup {
    pub async fn create_tenant(&self, token: &str, slug: &str) -> Result<Tenant, Status> {
        self.admin()
            .create_tenant(bearer(
                CreateTenantRequest {
                    slug: slug.into(),
                    name: "A tenant".into(),
                    idempotency_key: String::new(),
                    dry_run: false,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn set_tenant_active(&self, tenant: Uuid, active: bool) -> Tenant {
        let request = bearer(
            TenantRef {
                tenant_id: tenant.to_string(),
                dry_run: false,
            },
            &self.global_token,
        );
        let answer = if active {
            self.admin().reactivate_tenant(request).await
        } else {
            self.admin().suspend_tenant(request).await
        };
        answer.unwrap().into_inner()
    }
}

fn unique_slug() -> String {
    format!("t-{}", &Uuid::new_v4().simple().to_string()[..12])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_administrator_creates_and_renames_a_tenant() {
    let s = setup().await;
    let created = s
        .create_tenant(&s.global_token, &unique_slug())
        .await
        .unwrap();
    assert!(created.active);
    let renamed = s
        .admin()
        .rename_tenant(bearer(
            RenameTenantRequest {
                tenant_id: created.tenant_id.clone(),
                name: "Renamed".into(),
                dry_run: false,
            },
            &s.global_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "Renamed");
    assert!(
        s.audited(
            1,
            "action_key = 'tenant.renamed' AND entity_ref = $1 AND actor_kind_code = 'service'",
            &[&created.tenant_id],
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenant_is_refused_by_checks_until_reactivated() {
    let s = setup().await;
    // Asked by a service bound to no tenant: suspending tenant A revokes
    // the tokens of A's own services, the admin service's among them.
    let checker = create_service(&s.test.db(), None, &["authz.check"]).await;
    let checker = token_of(&s.channel, &checker).await.access_token;
    // Past a few of the test server's revocation polls, so each answer is
    // the one given once the suspension's revocations are in force.
    let settled = || tokio::time::sleep(test_settings().revocation_poll_interval * 3);
    assert!(!s.set_tenant_active(s.a.tenant, false).await.active);
    settled().await;
    assert_eq!(
        s.check_as(&checker, &s.a, s.a.child).await,
        DecisionReason::TenantSuspended
    );
    assert!(s.set_tenant_active(s.a.tenant, true).await.active);
    settled().await;
    assert_eq!(
        s.check_as(&checker, &s.a, s.a.child).await,
        DecisionReason::Allowed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_bound_service_may_not_change_tenants_even_with_the_permission() {
    let s = setup().await;
    let bound = create_service(&s.test.db(), Some(s.a.tenant), &["admin.tenants.write"]).await;
    let token = token_of(&s.channel, &bound).await.access_token;
    let refused = s.create_tenant(&token, &unique_slug()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_tenant_with_the_same_slug_already_exists() {
    let s = setup().await;
    let slug = unique_slug();
    s.create_tenant(&s.global_token, &slug).await.unwrap();
    let refused = s.create_tenant(&s.global_token, &slug).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(
        refused.message().starts_with("slug"),
        "{}",
        refused.message()
    );
    let refused = s
        .create_tenant(&s.global_token, "Not A Slug")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("slug"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_are_created_by_global_administrators_and_listed() {
    let s = setup().await;
    let created = s
        .admin()
        .create_capability(bearer(
            CreateCapabilityRequest {
                key: "ledger.export".into(),
                description: "Export the ledger".into(),
                ..Default::default()
            },
            &s.global_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let listed = s
        .admin()
        .list_capabilities(bearer(ListCapabilitiesRequest {}, &s.global_token))
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    assert!(listed.contains(&created), "{listed:?}");
    let refused = s
        .admin()
        .create_capability(bearer(
            CreateCapabilityRequest {
                key: "Ledger Export".into(),
                ..Default::default()
            },
            &s.global_token,
        ))
        .await
        .unwrap_err();
    assert!(
        refused.message().starts_with("key"),
        "{}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn global_creates_with_a_key_return_the_first_answer_on_repeat() {
    let s = setup().await;
    let tenant = CreateTenantRequest {
        slug: unique_slug(),
        name: "Retried".into(),
        idempotency_key: "tenant-retry-1".into(),
        dry_run: false,
    };
    let create_tenant = |request: CreateTenantRequest| {
        let request = bearer(request, &s.global_token);
        let mut client = s.admin();
        async move { client.create_tenant(request).await }
    };
    let first = create_tenant(tenant.clone()).await.unwrap().into_inner();
    let again = create_tenant(tenant.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    let other = CreateTenantRequest {
        name: "Something else".into(),
        ..tenant
    };
    let refused = create_tenant(other).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("idempotency_key"),
        "{refused:?}"
    );

    let capability = CreateCapabilityRequest {
        key: "retried.capability".into(),
        description: "Retried".into(),
        idempotency_key: "capability-retry-1".into(),
        dry_run: false,
    };
    let create_capability = |request: CreateCapabilityRequest| {
        let request = bearer(request, &s.global_token);
        let mut client = s.admin();
        async move { client.create_capability(request).await }
    };
    let first = create_capability(capability.clone()).await.unwrap();
    let again = create_capability(capability).await.unwrap();
    assert_eq!(first.into_inner(), again.into_inner());
    assert!(
        s.audited(
            1,
            "action_key = 'tenant.created' AND payload_json->'after'->>'name' = 'Retried'",
            &[]
        )
        .await
    );
    assert!(
        s.audited(
            1,
            "action_key = 'capability.created' AND payload_json->'after'->>'key' = 'retried.capability'",
            &[]
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_global_administrators_key_is_not_anothers() {
    let s = setup().await;
    let other = create_service(&s.test.db(), None, &["admin.catalogue.write"]).await;
    let other_token = token_of(&s.channel, &other).await.access_token;
    let create = |key: &str, token: &str| {
        let request = bearer(
            CreateCapabilityRequest {
                key: key.into(),
                idempotency_key: "shared-key".into(),
                ..Default::default()
            },
            token,
        );
        let mut client = s.admin();
        async move { client.create_capability(request).await }
    };
    let mine = create("mine.capability", &s.global_token).await.unwrap();
    let theirs = create("their.capability", &other_token).await.unwrap();
    assert_ne!(mine.into_inner(), theirs.into_inner());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_tenants_service_tokens_stop_working() {
    let s = setup().await;
    // Tenant A's administrating service works before...
    s.admin()
        .list_roles(crate::support::services::bearer(
            portcullis::proto::v1::ListRolesRequest {
                tenant_id: s.a.tenant.to_string(),
            },
            &s.token,
        ))
        .await
        .unwrap();
    s.set_tenant_active(s.a.tenant, false).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let answer = s
            .admin()
            .list_roles(crate::support::services::bearer(
                portcullis::proto::v1::ListRolesRequest {
                    tenant_id: s.a.tenant.to_string(),
                },
                &s.token,
            ))
            .await;
        match answer {
            Err(status) if status.code() == tonic::Code::Unauthenticated => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "a suspended tenant's service still acts: {other:?}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
