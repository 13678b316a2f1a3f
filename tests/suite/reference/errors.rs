//! `docs/reference/errors.md` is `grpc::reason::Reason`, rendered: every
//! reason the service answers with, its code and when.

use portcullis::grpc::reason::Reason;

use super::cell;

#[test]
fn the_error_page_is_every_reason_the_code_gives() {
    expect_test::expect_file!["../../../docs/reference/errors.md"].assert_eq(&render());
}

const BEFORE: &str = r#"# Errors

Every error carries google.rpc details (`tonic-types`,
`src/grpc/error_details.rs`), beside a message that names the field as
before: `ErrorInfo { reason, domain: "portcullis.dev", metadata }` with a
stable reason; every `INVALID_ARGUMENT` also a `BadRequest` whose field
violation names the field path of the message (`checks[3].org_node_id`);
`UNAVAILABLE` and `RESOURCE_EXHAUSTED` a `RetryInfo` (the lock's remaining
time for a locked login, else one second). A tower layer gives an error
made elsewhere (tonic's router, the health service) the reason of its code.
This page is generated from `src/grpc/reason.rs`, the one list of
reasons, by the test `reference::errors`; it fails when they differ.

"#;

const AFTER: &str = r#"
A denial is not an error: a check answers `allowed: false` with a
[`DecisionReason`](api.md#decisionreason) (`NO_MATCHING_ASSIGNMENT`,
`NODE_INACTIVE`, …). The HTTP edges give the same reasons in lower case:
forward-auth in `x-auth-reason` and its 403 body, AuthZEN in the answer's
`context.reason`, and every edge in the `reason` label of
`portcullis_decisions_total`.
"#;

fn render() -> String {
    let mut page = String::from(BEFORE);
    page.push_str("| reason | code | when |\n|---|---|---|\n");
    for reason in Reason::ALL {
        page.push_str(&format!(
            "| `{}` | {} | {} |\n",
            reason.as_str(),
            code_name(reason.code()),
            cell(reason.when()),
        ));
    }
    page.push_str(AFTER);
    page
}

/// The code as gRPC names it (`PERMISSION_DENIED`).
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}
