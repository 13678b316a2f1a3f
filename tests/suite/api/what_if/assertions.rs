//! `portcullis assert`'s checks: the committed demo assertions hold in the
//! demo world; a wrong expectation fails; a proposed change is checked
//! and never kept.

use portcullis::assertions::spec::{AssertionsFile, ChangesFile};
use portcullis::assertions::{self, AssertionError, Verdict};
use portcullis::db::{Db, RlsContext};

use crate::support::TestDb;
use crate::support::fixtures::count;

fn file<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/deploy/assertions/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn demo() -> (TestDb, Db) {
    let test = TestDb::new().await;
    let db = test.db();
    portcullis::ops::seed::seed_demo(&db).await.unwrap();
    (test, db)
}

async fn check(db: &Db, file: &AssertionsFile, changes: Option<&ChangesFile>) -> Vec<Verdict> {
    assertions::check(db, file, changes, chrono::Utc::now())
        .await
        .unwrap()
}

fn failures(verdicts: &[Verdict]) -> Vec<&str> {
    verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.line.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_assertions_hold_in_the_demo_world() {
    let (_test, db) = demo().await;
    let verdicts = check(&db, &file("demo.yaml"), None).await;
    assert_eq!(verdicts.len(), 8);
    assert_eq!(failures(&verdicts), Vec::<&str>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proposed_change_that_breaks_an_assertion_fails_it_and_is_not_kept() {
    let (_test, db) = demo().await;
    let ctx = RlsContext::operator().with_tenant(portcullis::ops::seed::DEMO_TENANT_ID);
    let assignments = count(&db, &ctx, "auth.org_assignments").await.unwrap();
    let audit = count(&db, &ctx, "audit.audit_events").await.unwrap();
    let assertions = file("demo.yaml");
    let changes: ChangesFile = file("demo-proposed-change.yaml");
    let verdicts = check(&db, &assertions, Some(&changes)).await;
    assert_eq!(
        failures(&verdicts),
        vec![
            "FAIL  nobody outside Demo Corp / Europe holds payment.transfer.approve: held by bob@demo.example at New York"
        ]
    );
    assert_eq!(
        count(&db, &ctx, "auth.org_assignments").await.unwrap(),
        assignments
    );
    assert_eq!(count(&db, &ctx, "audit.audit_events").await.unwrap(), audit);
    assert!(failures(&check(&db, &assertions, None).await).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_expectation_fails_saying_what_is_true() {
    let (_test, db) = demo().await;
    let wrong: AssertionsFile = serde_yaml_ng::from_str(
        r#"
tenant: d0000000-0000-4000-8000-000000000001
assertions:
  - { user: alice@demo.example, may_not: payment.transfer.approve, at: Demo Corp / Europe / Paris }
  - { holders_of: payment.ledger.read, at: Demo Corp / Europe / Paris, are_exactly: [alice@demo.example, carol@demo.example] }
"#,
    )
    .unwrap();
    let verdicts = check(&db, &wrong, None).await;
    assert_eq!(
        failures(&verdicts),
        vec![
            "FAIL  alice@demo.example may not payment.transfer.approve at Demo Corp / Europe / Paris: allowed",
            "FAIL  the holders of payment.ledger.read at Demo Corp / Europe / Paris are exactly [alice@demo.example, carol@demo.example]: also held by bob@demo.example; not held by carol@demo.example",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_names_nothing_is_an_error_naming_it() {
    let (_test, db) = demo().await;
    let unknown: AssertionsFile = serde_yaml_ng::from_str(
        "tenant: d0000000-0000-4000-8000-000000000001\nassertions:\n  - { user: nobody@demo.example, may: payment.ledger.read, at: Demo Corp / Mars }\n",
    )
    .unwrap();
    let error = assertions::check(&db, &unknown, None, chrono::Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(error, AssertionError::Unresolved(_)));
    assert_eq!(error.to_string(), r#"no user "nobody@demo.example""#);
}
