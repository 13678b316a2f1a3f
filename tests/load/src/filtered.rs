//! The query other services run under Portcullis's policies: a filtered
//! count over `payment_flow.payment_requests` (1,000,000 rows over the
//! first tenant's nodes), once under the policy (as payment_flow's
//! application role, the user set with `auth.set_user_context`) and once
//! with the same allowed node ids written into the query as a literal
//! array (as the superuser, no policy). The ratio is the policy's cost.

use std::time::{Duration, Instant};

use serde::Serialize;
use url::Url;
use uuid::Uuid;

use super::dataset::{Profile, tenant_id};
use portcullis::ops::admin::{AdminConnection, OperatorError};
use portcullis::ops::provision::{Confirmation, Environment, Names, ServiceName, role_urls};
use portcullis::ops::seed::payment_flow;

pub const ROWS: u32 = 1_000_000;
const QUERY: &str = "SELECT count(*)::text AS value FROM payment_flow.payment_requests \
                     WHERE created_utc > now() - interval '30 days'";

#[derive(Debug, Serialize)]
pub struct FilteredQuery {
    pub rows_in_table: u32,
    pub allowed_nodes: usize,
    pub rows_counted: i64,
    pub iterations: usize,
    pub policy_median_ms: f64,
    pub literal_median_ms: f64,
    pub policy_to_literal: f64,
}

fn database(profile: Profile) -> Result<String, OperatorError> {
    Ok(super::manifest::names(profile)?.database)
}

fn payment_flow_names(profile: Profile) -> Result<Names, OperatorError> {
    let service = ServiceName::parse(payment_flow::SERVICE)?;
    Names::for_service(&service, Environment::Dev, &database(profile)?)
}

/// A superuser connection inside the profile's database.
pub async fn superuser(
    admin_url: &Url,
    profile: Profile,
) -> Result<AdminConnection, OperatorError> {
    AdminConnection::connect_in(admin_url, &database(profile)?).await
}

/// The user the query is asked for: the first (by id) of the first tenant
/// with an assignment in force one level below the root (a region: about a
/// tenth of the tree), and that assignment's role.
async fn subject(db: &mut AdminConnection) -> Result<(Uuid, Uuid), OperatorError> {
    let found = db
        .query_strings(
            "SELECT oa.user_id::text || ' ' || oa.role_id::text AS value
               FROM auth.org_assignments oa
               JOIN auth.org_nodes n ON n.org_node_id = oa.org_node_id
               JOIN auth.org_nodes up ON up.org_node_id = n.parent_org_node_id
                                     AND up.parent_org_node_id IS NULL
              WHERE oa.tenant_id = $1::uuid AND oa.start_utc <= now()
                AND (oa.end_utc IS NULL OR oa.end_utc > now())
              ORDER BY oa.user_id, oa.role_id LIMIT 1",
            &[&tenant_id(0).to_string()],
        )
        .await?;
    let ids = found
        .first()
        .and_then(|row| row.split_once(' '))
        .and_then(|(user, role)| Some((user.parse().ok()?, role.parse().ok()?)));
    ids.ok_or_else(|| OperatorError::Invalid("no assignment one level below a root".into()))
}

/// Installs payment_flow in the profile's database, fills it once, and
/// lets the measured user read ledgers where their region's role holds.
pub async fn seed(admin_url: &Url, profile: Profile) -> Result<(), OperatorError> {
    let database = database(profile)?;
    payment_flow::install(
        admin_url,
        Environment::Dev,
        &database,
        Confirmation::default(),
    )
    .await?;
    let mut db = superuser(admin_url, profile).await?;
    let present = db
        .query_strings(
            "SELECT count(*)::text AS value FROM payment_flow.payment_requests",
            &[],
        )
        .await?;
    if present.first().map(String::as_str) == Some("0") {
        let nodes = profile.shape().nodes_per_tenant;
        db.execute(
            "filling payment_flow.payment_requests",
            &format!(
                "INSERT INTO payment_flow.payment_requests
                     (tenant_id, org_node_id, memo_text, amount_cents, created_utc)
                 SELECT '{tenant}', md5('bench/node/0/' || (g % {nodes}))::uuid, 'bench',
                        100 + g % 1000, now() - ((g::bigint * 7919) % 129600) * interval '1 minute'
                   FROM generate_series(0, {last}) g;
                 ANALYZE payment_flow.payment_requests",
                tenant = tenant_id(0),
                last = ROWS - 1,
            ),
        )
        .await?;
    }
    let (_, role) = subject(&mut db).await?;
    db.execute(
        "granting payment.ledger.read to the measured role",
        &format!(
            "INSERT INTO auth.capabilities (cap_key, cap_description)
                 VALUES ('payment.ledger.read', 'Read ledger entries') ON CONFLICT DO NOTHING;
             INSERT INTO auth.role_capabilities (tenant_id, role_id, cap_id)
                 SELECT '{tenant}', '{role}', cap_id FROM auth.capabilities
                  WHERE cap_key = 'payment.ledger.read'
             ON CONFLICT DO NOTHING",
            tenant = tenant_id(0),
        ),
    )
    .await
}

/// Times the query both ways, alternately, `iterations` times each after a
/// short warm-up; medians and their ratio.
pub async fn measure(
    admin_url: &Url,
    profile: Profile,
    iterations: usize,
) -> Result<FilteredQuery, OperatorError> {
    let mut literal_db = superuser(admin_url, profile).await?;
    let (user, _) = subject(&mut literal_db).await?;
    let names = payment_flow_names(profile)?;
    let passwords = payment_flow::passwords(Environment::Dev)?;
    let (_, app_url) = role_urls(admin_url, &names, &passwords)?;
    let mut policy_db = AdminConnection::connect(&app_url).await?;
    let context = format!("SELECT auth.set_user_context('{}', '{user}')", tenant_id(0));
    // The allowed nodes, as the policy computes them, for the literal query.
    policy_db.execute("BEGIN", "BEGIN").await?;
    policy_db.execute("setting the user", &context).await?;
    let allowed = policy_db
        .query_strings(
            "SELECT n::text AS value FROM auth.org_nodes_with_capability('payment.ledger.read') n",
            &[],
        )
        .await?;
    policy_db.execute("COMMIT", "COMMIT").await?;
    let literal_query = format!(
        "{QUERY} AND org_node_id = ANY('{{{}}}'::uuid[])",
        allowed.join(",")
    );
    let mut policy_times = Vec::new();
    let mut literal_times = Vec::new();
    let mut counts = (String::new(), String::new());
    for round in 0..iterations + 3 {
        policy_db.execute("BEGIN", "BEGIN").await?;
        policy_db.execute("setting the user", &context).await?;
        let started = Instant::now();
        let under_policy = policy_db.query_strings(QUERY, &[]).await?;
        let policy_time = started.elapsed();
        policy_db.execute("COMMIT", "COMMIT").await?;
        let started = Instant::now();
        let literal = literal_db.query_strings(&literal_query, &[]).await?;
        let literal_time = started.elapsed();
        if round >= 3 {
            policy_times.push(policy_time);
            literal_times.push(literal_time);
        }
        counts = (
            under_policy.into_iter().next().unwrap_or_default(),
            literal.into_iter().next().unwrap_or_default(),
        );
    }
    if counts.0 != counts.1 {
        return Err(OperatorError::Invalid(format!(
            "the policy counted {} rows and the literal list {}",
            counts.0, counts.1
        )));
    }
    let (policy, literal) = (median(&mut policy_times), median(&mut literal_times));
    let report = FilteredQuery {
        rows_in_table: ROWS,
        allowed_nodes: allowed.len(),
        rows_counted: counts.0.parse().unwrap_or_default(),
        iterations,
        policy_median_ms: policy,
        literal_median_ms: literal,
        policy_to_literal: if literal > 0.0 { policy / literal } else { 0.0 },
    };
    println!(
        "filtered query ({} payment requests, {} allowed nodes, {} counted): \
         under the policy {:.2} ms, literal node list {:.2} ms: {:.2}×",
        report.rows_in_table,
        report.allowed_nodes,
        report.rows_counted,
        report.policy_median_ms,
        report.literal_median_ms,
        report.policy_to_literal
    );
    Ok(report)
}

fn median(times: &mut [Duration]) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map_or(0.0, |t| t.as_secs_f64() * 1000.0)
}
