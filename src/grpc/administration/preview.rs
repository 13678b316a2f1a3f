//! What-if over gRPC: `dry_run` on every write, and `PreviewChanges` for a
//! list of them. Each write runs through its own RPC's handler, on a
//! database handle lent by a rehearsal, so it is parsed, guarded and
//! applied exactly as for real, and then rolled back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::AdministrationService;
use crate::admin::preview::{self, AccessChange, Direction, Summary};
use crate::callers;
use crate::db::Db;
use crate::grpc::access::refused;
use crate::grpc::fields::parse_id;
use crate::grpc::request::{caller, invalid};
use crate::names::TenantId;
use crate::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::proto::v1 as pb;
use crate::proto::v1::administration_server::Administration;
use crate::proto::v1::proposed_write::Write;

/// The most writes one preview applies.
pub const MAX_WRITES: usize = 100;

/// A write request that can be asked as a dry run.
pub(super) trait Rehearsable: Clone + Send + Sync + 'static {
    /// Clears the flag, saying whether it was set.
    fn take_dry_run(&mut self) -> bool;
    /// The tenant whose access the write can change (nil: none, or not
    /// a UUID, which the write itself refuses).
    fn tenant(&self) -> Uuid;
}

macro_rules! rehearsable {
    (tenant: $($message:ident),*) => {$(
        impl Rehearsable for pb::$message {
            fn take_dry_run(&mut self) -> bool {
                std::mem::take(&mut self.dry_run)
            }
            fn tenant(&self) -> Uuid {
                self.tenant_id.parse().unwrap_or_default()
            }
        }
    )*};
    (global: $($message:ident),*) => {$(
        impl Rehearsable for pb::$message {
            fn take_dry_run(&mut self) -> bool {
                std::mem::take(&mut self.dry_run)
            }
            fn tenant(&self) -> Uuid {
                Uuid::nil()
            }
        }
    )*};
}

rehearsable!(tenant: CreateOrgNodeRequest, RenameOrgNodeRequest, MoveOrgNodeRequest, OrgNodeRef,
    CreateRoleRequest, RenameRoleRequest, SetRoleCapabilitiesRequest, AssignRoleRequest,
    EndAssignmentRequest, GrantVisibilityRequest, RevokeVisibilityRequest, CreateUserRequest,
    CreateInvitationRequest, RevokeInvitationRequest, RenameTenantRequest, TenantRef,
    SetFederatedEmailLinkingRequest);
rehearsable!(global: CreateTenantRequest, CreateCapabilityRequest, CreateEndpointPolicyRequest,
    UpdateEndpointPolicyRequest, EndpointPolicyRef);

/// At the top of a write's handler: answers a dry run of it, else goes on.
macro_rules! answer_dry_run {
    ($self:ident, $request:ident, $method:ident) => {
        let mut $request = $request;
        if crate::grpc::administration::preview::Rehearsable::take_dry_run($request.get_mut()) {
            return $self
                .dry_run($request, |service, request| async move {
                    service.$method(request).await
                })
                .await;
        }
    };
}
pub(super) use answer_dry_run;

impl AdministrationService {
    /// The same service on another database handle.
    fn on(&self, db: Db) -> AdministrationService {
        AdministrationService {
            db,
            passwords: self.passwords.clone(),
            authn: self.authn.clone(),
            trusted_proxy_hops: self.trusted_proxy_hops,
        }
    }

    /// `write` as a dry run: its own answer, with the counts of the
    /// changes in access it would make now in the response headers.
    pub(super) async fn dry_run<T, R, F, Fut>(
        &self,
        request: Request<T>,
        write: F,
    ) -> Result<Response<R>, Status>
    where
        T: Rehearsable,
        F: Fn(AdministrationService, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        let tenant = request.get_ref().tenant();
        let (metadata, extensions, message) = request.into_parts();
        let preview = preview::preview(&self.db, tenant, |db| {
            let again = Request::from_parts(metadata.clone(), extensions.clone(), message.clone());
            write(self.on(db), again)
        })
        .await?;
        let summary = Summary::of(&preview.changes);
        let mut response = preview.outcome;
        let headers = response.metadata_mut();
        headers.insert("x-dry-run", MetadataValue::from_static("true"));
        headers.insert("x-access-gained", MetadataValue::from(summary.now.gained));
        headers.insert("x-access-lost", MetadataValue::from(summary.now.lost));
        Ok(response)
    }

    pub(super) async fn preview_changes(
        &self,
        request: Request<pb::PreviewChangesRequest>,
    ) -> Result<Response<pb::PreviewChangesResponse>, Status> {
        let principal = caller(&request)?;
        let tenant = parse_id::<TenantId>("tenant_id", &request.get_ref().tenant_id)?.get();
        let (metadata, extensions, body) = request.into_parts();
        let writes = proposed(&body, tenant, &principal)?;
        let page_size = match body.page_size {
            0 => DEFAULT_PAGE_SIZE as usize,
            n if n < 0 || n as u32 > MAX_PAGE_SIZE => {
                return Err(invalid(
                    "page_size",
                    format!("must be from 0 to {MAX_PAGE_SIZE}"),
                ));
            }
            n => n as usize,
        };
        let binding = binding(tenant, &body.writes);
        let offset = match body.page_token.as_str() {
            "" => 0,
            token => page_offset(token, &binding)
                .ok_or_else(|| invalid("page_token", "not a page of these writes"))?,
        };
        let preview = preview::preview(&self.db, tenant, |db| {
            let service = self.on(db);
            let (metadata, extensions, writes) = (&metadata, &extensions, &writes);
            async move {
                for (index, write) in writes.iter().enumerate() {
                    service
                        .perform(metadata.clone(), extensions.clone(), write.clone())
                        .await
                        .map_err(|status| at_write(index, write, status))?;
                }
                Ok::<_, Status>(())
            }
        })
        .await?;
        let summary = Summary::of(&preview.changes);
        let page: Vec<&AccessChange> = preview
            .changes
            .iter()
            .skip(offset)
            .take(page_size)
            .collect();
        let users = page.iter().map(|c| c.user_id).collect::<Vec<_>>();
        let names = preview::user_names(&self.db.for_reads(), tenant, users).await?;
        let label = |id: &Uuid| preview.labels.get(id).cloned().unwrap_or_default();
        let next = offset + page.len();
        Ok(Response::new(pb::PreviewChangesResponse {
            summary: Some(summary_message(&summary, preview.changes.len(), &label)),
            changes: page
                .iter()
                .map(|c| change_message(c, names.get(&c.user_id), &label))
                .collect(),
            next_page_token: if next < preview.changes.len() {
                page_token(next, &binding)
            } else {
                String::new()
            },
        }))
    }
}

/// The writes to apply: each in the request's tenant, none a dry run of
/// its own, each allowed to this caller by the rule table as its own RPC.
fn proposed(
    body: &pb::PreviewChangesRequest,
    tenant: Uuid,
    principal: &crate::tokens::Principal,
) -> Result<Vec<Write>, Status> {
    if body.writes.is_empty() || body.writes.len() > MAX_WRITES {
        return Err(invalid("writes", format!("give 1 to {MAX_WRITES} writes")));
    }
    let mut writes = Vec::with_capacity(body.writes.len());
    for (index, proposed) in body.writes.iter().enumerate() {
        let Some(mut write) = proposed.write.clone() else {
            return Err(invalid(&format!("writes[{index}]"), "names no write"));
        };
        let field = format!("writes[{index}].{}", field_of(&write));
        let (method, tenant_field) = parts(&mut write);
        if tenant_field.is_empty() {
            *tenant_field = tenant.to_string();
        } else if tenant_field.parse::<Uuid>().ok() != Some(tenant) {
            return Err(invalid(
                &format!("{field}.tenant_id"),
                "must be empty or the request's tenant_id",
            ));
        }
        callers::permit(principal, &format!("Administration/{method}"))
            .map_err(|refusal| prefixed(&field, refused(refusal)))?;
        writes.push(write);
    }
    Ok(writes)
}

/// Every write a preview can propose: its oneof case, the handler (and
/// oneof field) of its RPC, and its own dry-run flag, if it has one.
macro_rules! proposed_writes {
    ($($case:ident => $method:ident $([$flag:ident])?;)*) => {
        impl AdministrationService {
            /// One proposed write, through its RPC's handler.
            async fn perform(
                &self,
                metadata: MetadataMap,
                extensions: tonic::Extensions,
                write: Write,
            ) -> Result<(), Status> {
                match write {
                    $(Write::$case(m) => self
                        .$method(Request::from_parts(metadata, extensions, m))
                        .await
                        .map(drop),)*
                }
            }
        }

        /// The write's oneof field, e.g. `assign_role`.
        fn field_of(write: &Write) -> &'static str {
            match write {
                $(Write::$case(_) => stringify!($method),)*
            }
        }

        /// The write's RPC and its tenant field; clears its own dry-run flag.
        fn parts(write: &mut Write) -> (&'static str, &mut String) {
            match write {
                $(Write::$case(m) => {
                    $(m.$flag = false;)?
                    (stringify!($case), &mut m.tenant_id)
                })*
            }
        }
    };
}

proposed_writes! {
    CreateOrgNode => create_org_node [dry_run];
    RenameOrgNode => rename_org_node [dry_run];
    MoveOrgNode => move_org_node [dry_run];
    DeactivateOrgNode => deactivate_org_node [dry_run];
    ReactivateOrgNode => reactivate_org_node [dry_run];
    CreateRole => create_role [dry_run];
    RenameRole => rename_role [dry_run];
    SetRoleCapabilities => set_role_capabilities [dry_run];
    AssignRole => assign_role [dry_run];
    EndAssignment => end_assignment [dry_run];
    GrantVisibility => grant_visibility [dry_run];
    RevokeVisibility => revoke_visibility [dry_run];
    CreateUser => create_user [dry_run];
    DeactivateUser => deactivate_user;
    ReactivateUser => reactivate_user;
    CreateInvitation => create_invitation [dry_run];
    RevokeInvitation => revoke_invitation [dry_run];
}

/// A write's failure, saying which write it was.
fn at_write(index: usize, write: &Write, status: Status) -> Status {
    prefixed(&format!("writes[{index}].{}", field_of(write)), status)
}

fn prefixed(field: &str, status: Status) -> Status {
    Status::with_details_and_metadata(
        status.code(),
        format!("{field}: {}", status.message()),
        status.details().to_vec().into(),
        status.metadata().clone(),
    )
}

/// What a page token is bound to: the tenant and the writes, as sent.
fn binding(tenant: Uuid, writes: &[pb::ProposedWrite]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    for write in writes {
        let encoded = write.encode_to_vec();
        hasher.update((encoded.len() as u64).to_be_bytes());
        hasher.update(encoded);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize()[..16]);
    out
}

/// The position of the next page, with what it is bound to. Not secret:
/// a changed token can only point into the caller's own preview.
fn page_token(offset: usize, binding: &[u8; 16]) -> String {
    let mut bytes = (offset as u64).to_be_bytes().to_vec();
    bytes.extend_from_slice(binding);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn page_offset(token: &str, binding: &[u8; 16]) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != 24 || bytes[8..] != binding[..] {
        return None;
    }
    usize::try_from(u64::from_be_bytes(bytes[..8].try_into().ok()?)).ok()
}

fn summary_message(
    summary: &Summary,
    changes: usize,
    label: &impl Fn(&Uuid) -> String,
) -> pb::PreviewSummary {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::PreviewSummary {
        gained: count(summary.now.gained),
        lost: count(summary.now.lost),
        scheduled_gained: count(summary.scheduled.gained),
        scheduled_lost: count(summary.scheduled.lost),
        users: count(summary.users),
        changes: count(changes as u64),
        by_capability: summary
            .by_capability
            .iter()
            .map(|(capability, tally)| pb::CapabilityTally {
                capability: capability.clone(),
                gained: count(tally.gained),
                lost: count(tally.lost),
            })
            .collect(),
        by_subtree: summary
            .by_subtree
            .iter()
            .map(|(node, tally)| pb::SubtreeTally {
                org_node_id: node.to_string(),
                label: label(node),
                gained: count(tally.gained),
                lost: count(tally.lost),
            })
            .collect(),
    }
}

fn change_message(
    change: &AccessChange,
    name: Option<&String>,
    label: &impl Fn(&Uuid) -> String,
) -> pb::AccessChange {
    pb::AccessChange {
        capability: change.capability.clone(),
        direction: match change.direction {
            Direction::Gained => pb::AccessDirection::Gained,
            Direction::Lost => pb::AccessDirection::Lost,
        } as i32,
        user_id: change.user_id.to_string(),
        user_name: name.cloned().unwrap_or_default(),
        subtree_root_id: change.subtree_root.to_string(),
        subtree_root_label: label(&change.subtree_root),
        except_org_node_ids: change.except.iter().map(Uuid::to_string).collect(),
        effective_at: change.at.map(crate::grpc::request::timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_is_refused_for_other_writes() {
        let one = binding(Uuid::nil(), &[]);
        let other = binding(Uuid::from_u128(1), &[]);
        let token = page_token(200, &one);
        assert_eq!(page_offset(&token, &one), Some(200));
        assert_eq!(page_offset(&token, &other), None);
        assert_eq!(page_offset("not-a-token", &one), None);
    }

    #[test]
    fn a_method_is_named_as_the_oneof_names_it() {
        let write = Write::SetRoleCapabilities(Default::default());
        assert_eq!(field_of(&write), "set_role_capabilities");
    }
}
