//! Where a seeded profile lives and how to reach it, kept under `target/`
//! for `bench run` and `bench load`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use super::dataset::Profile;
use crate::ops::admin::AdminError;
use crate::ops::provision::{Names, Passwords, role_urls};

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub profile: Profile,
    /// The application role's URL, without a password (set
    /// PORTCULLIS_APP_PASSWORD for servers that want one).
    pub app_url: String,
    pub service_secret: String,
}

pub fn names(profile: Profile) -> Result<Names, AdminError> {
    Names::new(
        &format!("portcullis_bench_{}", profile.as_str()),
        "portcullis_bench_owner",
        "portcullis_bench_app",
    )
}

pub fn urls(admin: &Url, profile: Profile) -> Result<(Url, Url), AdminError> {
    role_urls(admin, &names(profile)?, &Passwords::from_env())
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
                "{}: {e}; run `portcullis bench seed --profile {}` first",
                path.display(),
                profile.as_str()
            ),
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}
