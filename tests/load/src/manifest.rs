//! Where a seeded profile lives and how to reach it, kept under `target/`
//! for `portcullis-load run`, `load`, `soak` and `compare`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use super::dataset::Profile;
use portcullis::ops::admin::OperatorError;
use portcullis::ops::provision::{
    Environment, Names, RolePasswords, Secrets, ServiceName, role_urls,
};

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub profile: Profile,
    /// The application role's URL, without a password (set
    /// BENCH_APP_DEV_PASSWORD for servers that want one).
    pub app_url: String,
    pub service_secret: String,
}

/// The benchmark is a service of its own in dev: `bench_migration_dev_user`
/// and `bench_app_dev_user` (passwords, if the server wants them, from
/// BENCH_MIGRATION_DEV_PASSWORD and BENCH_APP_DEV_PASSWORD), in a database
/// of its own per profile, `portcullis-bench-<profile>` (releases before
/// the platform layout used `portcullis_bench_<profile>`: drop it).
pub fn names(profile: Profile) -> Result<Names, OperatorError> {
    Names::for_service(
        &bench_service()?,
        Environment::Dev,
        &format!("portcullis-bench-{}", profile.as_str()),
    )
}

fn bench_service() -> Result<ServiceName, OperatorError> {
    ServiceName::parse("bench")
}

pub fn passwords() -> Result<RolePasswords, OperatorError> {
    Ok(Secrets::load(None)?.passwords(&bench_service()?, Environment::Dev))
}

pub fn urls(admin: &Url, profile: Profile) -> Result<(Url, Url), OperatorError> {
    role_urls(admin, &names(profile)?, &passwords()?)
}

pub fn path(dir: &Path, profile: Profile) -> PathBuf {
    dir.join(format!("{}.json", profile.as_str()))
}

/// Written readable by its owner only: it holds the bench service's secret.
pub fn write(dir: &Path, manifest: &Manifest) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = path(dir, manifest.profile);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(serde_json::to_string_pretty(manifest)?.as_bytes())?;
    Ok(path)
}

pub fn read(dir: &Path, profile: Profile) -> std::io::Result<Manifest> {
    let path = path(dir, profile);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "{}: {e}; run `portcullis-load seed --profile {}` first",
                path.display(),
                profile.as_str()
            ),
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}
