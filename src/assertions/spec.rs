//! The files `portcullis assert` reads: expectations about access, and
//! proposed changes to hold them against. People write them, so every
//! name is the one people use: emails, role keys, capability keys, and
//! nodes as a path of labels from the root (`Demo Corp / Europe / Paris`)
//! or a UUID.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionsFile {
    /// The tenant (a UUID) every assertion is about.
    pub tenant: Uuid,
    pub assertions: Vec<Assertion>,
}

/// One expectation; its shape says which.
#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Assertion {
    /// The user may do the capability at the node.
    May {
        user: String,
        may: String,
        at: String,
    },
    /// The user may not.
    MayNot {
        user: String,
        may_not: String,
        at: String,
    },
    /// Exactly these users may do the capability at the node.
    HoldersAre {
        holders_of: String,
        at: String,
        are_exactly: Vec<String>,
    },
    /// Nobody may do the capability anywhere outside the subtree.
    NobodyOutside {
        nobody_outside: String,
        holds: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesFile {
    /// Each a one-key map, `- assign: {…}`, as people write YAML (not
    /// YAML tags, serde_yaml's default for enums).
    #[serde(with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub changes: Vec<Change>,
}

/// One proposed write, as the administration API would make it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    Assign {
        user: String,
        role: String,
        at: String,
        #[serde(default)]
        from: Option<DateTime<Utc>>,
        #[serde(default)]
        until: Option<DateTime<Utc>>,
    },
    /// Ends the user's assignments of the role at the node that are in
    /// force or to come.
    EndAssignment {
        user: String,
        role: String,
        at: String,
    },
    Move {
        node: String,
        under: String,
    },
    Deactivate {
        node: String,
    },
    Reactivate {
        node: String,
    },
    SetRoleCapabilities {
        role: String,
        capabilities: Vec<String>,
    },
    DeactivateUser {
        user: String,
    },
    ReactivateUser {
        user: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_assertion_shape_is_read_as_its_kind() {
        let file: AssertionsFile = serde_yaml_ng::from_str(
            r#"
tenant: d0000000-0000-4000-8000-000000000001
assertions:
  - { user: alice@demo.example, may: a.b, at: Demo Corp / Europe }
  - { user: bob@demo.example, may_not: a.b, at: Demo Corp }
  - { holders_of: a.b, at: Demo Corp, are_exactly: [alice@demo.example] }
  - { nobody_outside: Demo Corp / Europe, holds: a.b }
"#,
        )
        .unwrap();
        assert!(matches!(file.assertions[0], Assertion::May { .. }));
        assert!(matches!(file.assertions[1], Assertion::MayNot { .. }));
        assert!(matches!(file.assertions[2], Assertion::HoldersAre { .. }));
        assert!(matches!(
            file.assertions[3],
            Assertion::NobodyOutside { .. }
        ));
    }

    #[test]
    fn a_change_is_a_one_key_map() {
        let file: ChangesFile = serde_yaml_ng::from_str(
            "changes:\n  - assign: { user: bob, role: treasurer, at: Corp }\n  - deactivate: { node: Corp / Paris }\n",
        )
        .unwrap();
        assert!(matches!(file.changes[0], Change::Assign { .. }));
        assert!(matches!(file.changes[1], Change::Deactivate { .. }));
    }

    #[test]
    fn a_misspelt_key_is_refused_not_ignored() {
        let file = serde_yaml_ng::from_str::<AssertionsFile>(
            "tenant: d0000000-0000-4000-8000-000000000001\nassertions:\n  - { user: a, mays: x, at: y }\n",
        );
        assert!(file.is_err());
    }
}
