//! The book's reference pages that come from the code. Each test renders its
//! page from the code and compares it with the file under `docs/reference/`;
//! `UPDATE_EXPECT=1 cargo test --test suite reference` rewrites the pages
//! after a deliberate change. They also refuse what the page could not
//! document: a flag without help, an RPC or field without a comment, a
//! metric or an error reason missing from its table.

mod api;
mod configuration;
mod errors;
mod metrics;

/// A table cell: one line, no column break.
pub(crate) fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
