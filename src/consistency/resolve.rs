//! Placing the tokens that name a transaction (made in SQL by
//! `auth.consistency_token()`): the primary checks the token's MAC and
//! says whether the transaction has ended; once it has, its commit lies
//! before the primary's log position now.

use super::requirement::not_issued;
use super::{ConsistencyError, Requirement, Stated};
use crate::db::{Db, TransactionPoint};

/// The requirement `stated` comes to once its transactions are placed.
pub async fn resolve(stated: Stated, db: &Db) -> Result<Requirement, ConsistencyError> {
    let mut requirement = stated.requirement;
    for (field, token) in stated.transactions {
        match db.transaction_point(&token).await {
            Ok(None) => return Err(not_issued(field)),
            Ok(Some(TransactionPoint::Ended(lsn))) => {
                requirement.at_least = requirement.at_least.max(Some(lsn));
            }
            // Not committed yet: nothing newer than the primary exists.
            // Nor can a replica be shown fresh enough if the primary
            // cannot be asked.
            Ok(Some(TransactionPoint::Running)) | Err(_) => {
                requirement.fully_consistent = true;
            }
        }
    }
    Ok(requirement)
}
