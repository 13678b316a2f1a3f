//! `portcullis keys generate` and `portcullis keys jwks`.

use std::path::PathBuf;

use clap::Subcommand;

use anyhow::Context;

use crate::tokens::KeyRing;
use crate::tokens::keys::generate_key_file;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) into a directory.
    ///
    /// The file is named for the moment the key starts signing. Roll it out
    /// to every replica before that moment (--activate-in) so that all of
    /// them can verify its tokens before any replica issues one.
    Generate {
        /// The signing-keys directory the servers read.
        #[arg(long, env = "PORTCULLIS_SIGNING_KEYS_DIR")]
        dir: PathBuf,
        /// Start signing this long from now.
        #[arg(long, default_value = "0s")]
        activate_in: humantime::Duration,
    },
    /// Write the public keys (a JWKS: OKP/Ed25519, alg EdDSA, kid) that
    /// verify this service's tokens, for PostgREST's `jwt-secret = "@FILE"`.
    /// Run it again after each key rotation, and reload PostgREST.
    Jwks {
        /// The signing-keys directory the servers read.
        #[arg(long, env = "PORTCULLIS_SIGNING_KEYS_DIR")]
        dir: PathBuf,
        /// Where to write the JWKS (`-` for standard output).
        #[arg(long)]
        out: PathBuf,
        /// How long a superseded key stays published (at least the access
        /// token lifetime plus the leeway).
        #[arg(long, default_value = "1h")]
        retirement_grace: humantime::Duration,
    },
}

/// `portcullis keys …`.
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { dir, activate_in } => {
            let activates_at = chrono::Utc::now() + chrono::Duration::from_std(activate_in.into())?;
            let (path, kid) = generate_key_file(&dir, activates_at)?;
            println!(
                "wrote {} (kid {kid}, signs from {activates_at})",
                path.display()
            );
            Ok(())
        }
        KeysCommand::Jwks {
            dir,
            out,
            retirement_grace,
        } => {
            let ring = KeyRing::load_dir(&dir, retirement_grace.into())?;
            let jwks = ring.jwks_json(chrono::Utc::now());
            if out.as_os_str() == "-" {
                println!("{jwks}");
            } else {
                std::fs::write(&out, format!("{jwks}\n"))
                    .with_context(|| format!("writing {}", out.display()))?;
                println!("wrote {}", out.display());
            }
            Ok(())
        }
    }
}
