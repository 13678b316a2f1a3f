//! The error table of `docs/reference/errors.md` is `grpc::reason::Reason`,
//! rendered: every reason the service answers with, its code and when.

use portcullis::grpc::reason::Reason;

use super::cell;

const PAGE: &str = "docs/reference/errors.md";
const BEGIN: &str =
    "<!-- reasons: generated from grpc::reason::Reason by the test reference::errors -->\n";
const END: &str = "<!-- reasons: end -->\n";

#[test]
fn the_error_table_is_every_reason_the_code_gives() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    let page = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = page
        .split_once(BEGIN)
        .expect("the page marks where its table begins");
    let (table, after) = rest
        .split_once(END)
        .expect("the page marks where its table ends");
    let expected = render();
    if table != expected && std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{expected}{END}{after}")).unwrap();
        return;
    }
    assert_eq!(
        table, expected,
        "{PAGE}'s reason table differs from grpc::reason::Reason; \
         UPDATE_EXPECT=1 cargo test --test suite reference rewrites it"
    );
}

fn render() -> String {
    let mut table = String::from("| reason | code | when |\n|---|---|---|\n");
    for reason in Reason::ALL {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            reason.as_str(),
            code_name(reason.code()),
            cell(reason.when()),
        ));
    }
    table
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
