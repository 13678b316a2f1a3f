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

/// A table cell: one line, no column break, `<name>` shown as text.
pub(crate) fn cell(text: &str) -> String {
    prose(&text.split_whitespace().collect::<Vec<_>>().join(" ")).replace('|', "\\|")
}

/// Text as Markdown shows it: `<name>` outside code spans is text, not an
/// HTML tag.
pub(crate) fn prose(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 0 {
                part.replace('<', "&lt;").replace('>', "&gt;")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}
