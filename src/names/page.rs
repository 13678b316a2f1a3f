//! How many rows a page of any listing holds: the one default and the one
//! ceiling for every listing and search, on every edge.

/// A page's size when the request leaves it unset (0).
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most rows one page holds.
pub const MAX_PAGE_SIZE: u32 = 1000;
