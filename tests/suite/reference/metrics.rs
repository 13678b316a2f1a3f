//! `docs/reference/metrics.md` is `metrics::CATALOGUE`, rendered; a running
//! server exports no metric the catalogue lacks, and every one the test
//! makes happen.

use std::collections::BTreeSet;

use portcullis::metrics::CATALOGUE;

use super::cell;
use crate::operations::metrics::scrape;
use crate::support::TestDb;
use crate::support::server::TestServer;
use crate::support::services::{create_service, exchange, token_of};

#[test]
fn the_metrics_page_is_the_catalogue() {
    expect_test::expect_file!["../../../docs/reference/metrics.md"].assert_eq(&render());
}

/// What a server exports, by family name (a histogram's `_bucket`, `_sum`
/// and `_count` are one family).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| line.starts_with("portcullis_"))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|series| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| series.strip_suffix(suffix))
                .filter(|family| CATALOGUE.iter().any(|m| m.name == *family))
                .unwrap_or(series)
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_server_exports_the_catalogue_and_nothing_else() {
    let test = TestDb::new().await;
    let db = test.db();
    let service = create_service(&db, None, &["tokens.verify"]).await;
    let server = TestServer::build(db).metrics().start().await;
    let channel = server.channel().await;
    // An RPC, a granted and a refused exchange.
    token_of(&channel, &service).await;
    exchange(&channel, service.key.as_str(), "wrong", &[])
        .await
        .unwrap_err();

    let names = exported(&scrape(server.metrics.unwrap()).await);

    let catalogued: BTreeSet<String> = CATALOGUE.iter().map(|m| m.name.to_owned()).collect();
    let unknown: Vec<_> = names.difference(&catalogued).collect();
    assert!(
        unknown.is_empty(),
        "exported but not in metrics::CATALOGUE (nor on the metrics page): {unknown:?}"
    );
    // Counted only after rarer events (a decision, a lockout, a refused ID
    // token, a flood of refused exchanges, a read routed among replicas):
    // each has a test of its own in the areas that provoke them.
    let rare = [
        "portcullis_decisions_total",
        "portcullis_login_lockouts_total",
        "portcullis_id_token_rejections_total",
        "portcullis_audit_refusals_unrecorded_total",
        // Only with read replicas configured (database::replication).
        "portcullis_replica_reads_total",
        "portcullis_replica_fallbacks_total",
        "portcullis_replica_wait_seconds",
        "portcullis_replica_staleness_seconds",
        "portcullis_replica_in_rotation",
        // Only once a Watch stream has opened (api::watch).
        "portcullis_watch_streams",
        "portcullis_watch_changes_total",
        "portcullis_watch_lag_seconds",
        "portcullis_watch_ended_total",
    ];
    let unseen: Vec<_> = catalogued
        .iter()
        .filter(|name| !rare.contains(&name.as_str()) && !names.contains(*name))
        .collect();
    assert!(unseen.is_empty(), "catalogued but not exported: {unseen:?}");
}

fn render() -> String {
    let mut page = String::from(
        "# Metrics

Generated from `metrics::CATALOGUE` (`src/metrics.rs`) by the test
`reference::metrics`, which also starts a server and fails if it exports a
metric not listed here. `--metrics-listen` (`PORTCULLIS_METRICS_LISTEN`; off
for `serve`, `127.0.0.1:9464` for `dev`) serves them in Prometheus's text
format on `GET /metrics`, each with its `# HELP` line. Label values are
always codes of ours, never a value a client chose.

| metric | type | labels | meaning |
|---|---|---|---|
",
    );
    for metric in CATALOGUE {
        let labels: Vec<String> = metric.labels.iter().map(|l| format!("`{l}`")).collect();
        page.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            metric.name,
            metric.kind.as_str(),
            labels.join(", "),
            cell(metric.help),
        ));
    }
    page
}
