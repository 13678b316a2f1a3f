//! `portcullis org …`: the org tree, through the same domain code as the
//! Administration API (audited as `system`), each change with `--dry-run`.

use clap::{Args, Subcommand};

use super::common::{DatabaseArgs, database};
use super::preview::{PreviewArgs, made};
use crate::admin::{Administrator, Label, NodeType, org};
use crate::names::{OrgNodeId, TenantId};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Add a node (prints its id).
    Add {
        /// The tenant (a UUID).
        #[arg(long)]
        tenant: TenantId,
        /// The parent node; none for a new root.
        #[arg(long)]
        parent: Option<OrgNodeId>,
        /// Lowercase letters, digits and _, e.g. site.
        #[arg(long = "type")]
        node_type: String,
        /// The node's label, 1 to 200 characters.
        #[arg(long)]
        label: String,
        #[command(flatten)]
        preview: PreviewArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Move a node, with its subtree, under another parent.
    Move {
        /// The tenant (a UUID).
        #[arg(long)]
        tenant: TenantId,
        /// The node to move (a UUID).
        #[arg(long)]
        node: OrgNodeId,
        /// Its new parent (a UUID), not inside its own subtree.
        #[arg(long)]
        under: OrgNodeId,
        #[command(flatten)]
        preview: PreviewArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Deactivate a node: nothing is allowed at it or below until it is
    /// reactivated.
    Deactivate(NodeArgs),
    /// Reactivate a node.
    Reactivate(NodeArgs),
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The tenant (a UUID).
    #[arg(long)]
    tenant: TenantId,
    /// The node (a UUID).
    #[arg(long)]
    node: OrgNodeId,
    #[command(flatten)]
    preview: PreviewArgs,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// `portcullis org …`.
pub async fn run(command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Add {
            tenant,
            parent,
            node_type,
            label,
            preview,
            database: args,
        } => {
            let node_type =
                NodeType::parse(&node_type).map_err(|e| anyhow::anyhow!("--type: {e}"))?;
            let label = Label::parse(&label).map_err(|e| anyhow::anyhow!("--label: {e}"))?;
            let admin = Administrator::operator(tenant, chrono::Utc::now());
            let db = database(&args)?;
            let node = made(&db, tenant, preview, |db| {
                let (admin, node_type, label) = (&admin, &node_type, &label);
                async move { org::create(&db, admin, parent, node_type, label, None).await }
            })
            .await?;
            if let Some(node) = node {
                println!("{}", node.id);
            }
            Ok(())
        }
        OrgCommand::Move {
            tenant,
            node,
            under,
            preview,
            database: args,
        } => {
            let admin = Administrator::operator(tenant, chrono::Utc::now());
            let db = database(&args)?;
            let admin = &admin;
            let moved = made(&db, tenant, preview, |db| async move {
                org::move_under(&db, admin, node, under).await
            })
            .await?;
            if let Some(moved) = moved {
                println!("{} is now under {}", moved.id, under);
            }
            Ok(())
        }
        OrgCommand::Deactivate(args) => set_node_active(args, false).await,
        OrgCommand::Reactivate(args) => set_node_active(args, true).await,
    }
}

async fn set_node_active(args: NodeArgs, active: bool) -> anyhow::Result<()> {
    let NodeArgs {
        tenant,
        node,
        preview,
        database: args,
    } = args;
    let admin = Administrator::operator(tenant, chrono::Utc::now());
    let db = database(&args)?;
    let admin = &admin;
    let changed = made(&db, tenant, preview, |db| async move {
        org::set_active(&db, admin, node, active).await
    })
    .await?;
    if let Some(changed) = changed {
        let state = if changed.active { "active" } else { "inactive" };
        println!("{} is {state}", changed.id);
    }
    Ok(())
}
