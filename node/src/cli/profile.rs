//! fqctl profiles: a small TOML file naming the endpoint and the operator certificate, so they
//! need not be repeated on every command.
//!
//! ```toml
//! endpoint = "https://127.0.0.1:7400"   # the node's operator API
//! ca = "pki/ca.pem"                      # CA that signed the node's certificate
//! cert = "pki/op-610116-director-dev.pem"
//! key = "pki/op-610116-director-dev.key"
//! lang = "zh"                            # optional: "zh" (default) or "en"
//! ```
//! Relative paths are resolved against the profile file's folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `https://host:port` of the node's operator API.
    pub endpoint: String,
    /// PEM of the federation CA.
    pub ca: PathBuf,
    /// PEM of the operator certificate.
    pub cert: PathBuf,
    /// PEM of the operator key.
    pub key: PathBuf,
    /// Output language, "zh" or "en".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("profile {path} is not valid: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("cannot write profile {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl Profile {
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut p: Profile = toml::from_str(&text).map_err(|source| ProfileError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut p.ca, &mut p.cert, &mut p.key] {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        Ok(p)
    }

    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let werr = |source| ProfileError::Write {
            path: path.display().to_string(),
            source,
        };
        // Serializing this plain struct cannot fail.
        let text = toml::to_string_pretty(self).unwrap_or_default();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(werr)?;
        }
        std::fs::write(path, text).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_profile_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile {
            endpoint: "https://127.0.0.1:7400".into(),
            ca: "pki/ca.pem".into(),
            cert: "/abs/op.pem".into(),
            key: "pki/op.key".into(),
            lang: None,
        };
        let path = dir.path().join("profiles/x.toml");
        p.save(&path).unwrap();
        let q = Profile::load(&path).unwrap();
        assert_eq!(q.ca, dir.path().join("profiles/pki/ca.pem"));
        assert_eq!(q.cert, PathBuf::from("/abs/op.pem"));
        assert_eq!(q.endpoint, p.endpoint);
    }

    #[test]
    fn unknown_keys_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        assert!(matches!(
            Profile::load(&path),
            Err(ProfileError::Read { .. })
        ));
        std::fs::write(
            &path,
            "endpoint = 'x'\nca='a'\ncert='b'\nkey='c'\ncolour='red'\n",
        )
        .unwrap();
        assert!(
            Profile::load(&path)
                .unwrap_err()
                .to_string()
                .contains("colour")
        );
    }
}
