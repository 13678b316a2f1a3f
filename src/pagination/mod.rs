//! Paging, one way for every listing and search on every edge: how many
//! rows a page holds (one default, one ceiling), and the page token new
//! listings use ([`page_token`]: a keyset cursor bound to its query and
//! MACed, so any replica accepts a genuine one and refuses a forged one).
//! The administration's older listings keep their own in-tenant cursor
//! (`admin::cursor`).

pub mod page_token;

/// A page's size when the request leaves it unset (0).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most rows one page holds.
pub const MAX_PAGE_SIZE: u32 = 1000;
