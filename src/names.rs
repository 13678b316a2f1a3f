//! The shape shared by capability keys and service permissions.

/// Dot-separated segments of lower-case ASCII letters, digits and '_', each
/// starting with a letter: `payment.ledger.download`, `authz.check`.
pub(crate) fn is_dotted_lowercase(raw: &str) -> bool {
    raw.split('.').all(|segment| {
        let mut chars = segment.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}
