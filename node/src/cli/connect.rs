//! Resolves where fqctl connects and with which certificate: the profile, then flags.

use tonic::transport::Channel;

use super::profile::Profile;
use super::{Cli, Failure, Lang};
use crate::tls::{self, TlsFiles};

/// Endpoint, certificate files and language after profile and flags are merged.
pub struct Target {
    pub endpoint: String,
    pub files: TlsFiles,
    pub lang: Lang,
}

pub fn resolve(cli: &Cli) -> Result<Target, Failure> {
    let profile = match &cli.profile {
        Some(p) => Some(Profile::load(p).map_err(Failure::usage)?),
        None => None,
    };
    let pick =
        |flag: &Option<std::path::PathBuf>, from: Option<&std::path::PathBuf>, name: &str| {
            flag.clone().or_else(|| from.cloned()).ok_or_else(|| {
                Failure::usage(format!(
                    "no --{name} given and no profile (use --profile FILE or FQCTL_PROFILE)"
                ))
            })
        };
    let endpoint = cli
        .endpoint
        .clone()
        .or_else(|| profile.as_ref().map(|p| p.endpoint.clone()))
        .ok_or_else(|| {
            Failure::usage(
                "no --endpoint given and no profile (use --profile FILE or FQCTL_PROFILE)",
            )
        })?;
    let files = TlsFiles {
        ca: pick(&cli.ca, profile.as_ref().map(|p| &p.ca), "ca")?,
        cert: pick(&cli.cert, profile.as_ref().map(|p| &p.cert), "cert")?,
        key: pick(&cli.key, profile.as_ref().map(|p| &p.key), "key")?,
    };
    let lang = match (cli.lang, profile.as_ref().and_then(|p| p.lang.as_deref())) {
        (Some(l), _) => l,
        (None, Some("en")) => Lang::En,
        (None, Some("zh") | None) => Lang::Zh,
        (None, Some(other)) => {
            return Err(Failure::usage(format!(
                "profile lang {other:?}: use \"zh\" or \"en\""
            )));
        }
    };
    Ok(Target {
        endpoint,
        files,
        lang,
    })
}

/// Connects over mutual TLS; refuses anything but https://.
pub async fn channel(t: &Target) -> Result<Channel, Failure> {
    if !t.endpoint.starts_with("https://") {
        return Err(Failure::usage(format!(
            "endpoint {:?} must start with https:// (fqctl never talks plaintext)",
            t.endpoint
        )));
    }
    for (what, p) in [
        ("CA", &t.files.ca),
        ("certificate", &t.files.cert),
        ("key", &t.files.key),
    ] {
        if !p.exists() {
            return Err(Failure::usage(format!(
                "{what} file {} does not exist",
                p.display()
            )));
        }
    }
    tls::connect(&t.endpoint, &t.files)
        .await
        .map_err(|e| Failure::unreachable(format!("cannot reach {}: {e}", t.endpoint)))
}
