//! A consistency header the gRPC edge cannot honour: `INVALID_ARGUMENT`
//! naming the header, like any bad field.

use crate::consistency::ConsistencyError;
use crate::consistency::layer::Reject;

#[derive(Clone, Copy)]
pub struct InvalidConsistency;

impl<B: Default> Reject<B> for InvalidConsistency {
    fn reject(&self, error: ConsistencyError) -> http::Response<B> {
        super::request::invalid(error.field, error.problem).into_http()
    }
}
