//! The app-link files that let an invite link open the installed app instead of the browser:
//! `/.well-known/apple-app-site-association` (iOS universal links) and
//! `/.well-known/assetlinks.json` (Android App Links), built from `PHOTON_IOS_APP_IDS`,
//! `PHOTON_ANDROID_PACKAGE` and `PHOTON_ANDROID_CERT_SHA256`. Without those settings the files
//! are 404, which both platforms read as "no app claims these links".
//!
//! The settings are checked at start-up: Apple and Google fetch these files from their own
//! servers, cache them and say nothing when one is wrong, so a typo would otherwise surface
//! only as links that quietly open the browser.

use anyhow::bail;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;

/// Which apps may open this server's invite links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppLinks {
    /// `TEAMID.bundle.id` of each iOS app; empty: no apple-app-site-association.
    pub ios_app_ids: Vec<String>,
    /// The Android app; `None`: no assetlinks.json.
    pub android: Option<AndroidApp>,
}

/// An Android app and the certificates its releases are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidApp {
    pub package: String,
    /// SHA-256 fingerprints, upper-case hex bytes joined by colons, as assetlinks.json wants.
    pub cert_fingerprints: Vec<String>,
}

impl AppLinks {
    /// Checks and normalises the settings (blank entries of a list are ignored).
    pub fn resolve(
        ios_app_ids: &[String],
        android_package: Option<&str>,
        android_cert_sha256: &[String],
    ) -> anyhow::Result<Self> {
        let ios_app_ids = ios_app_ids
            .iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
            .map(ios_app_id)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let package = android_package.map(str::trim).filter(|p| !p.is_empty());
        let fingerprints = android_cert_sha256
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .map(cert_fingerprint)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let android = match (package, fingerprints.is_empty()) {
            (Some(package), false) => Some(AndroidApp {
                package: android_package_name(package)?,
                cert_fingerprints: fingerprints,
            }),
            (None, true) => None,
            _ => {
                bail!("PHOTON_ANDROID_PACKAGE and PHOTON_ANDROID_CERT_SHA256 must be set together")
            }
        };
        Ok(Self {
            ios_app_ids,
            android,
        })
    }

    /// The apple-app-site-association document, if iOS apps are configured.
    pub fn apple(&self) -> Option<serde_json::Value> {
        (!self.ios_app_ids.is_empty()).then(|| {
            json!({
                "applinks": {
                    "details": [{
                        "appIDs": self.ios_app_ids,
                        "components": [{ "/": "/join/*" }],
                    }],
                },
            })
        })
    }

    /// The assetlinks.json document, if an Android app is configured.
    pub fn android(&self) -> Option<serde_json::Value> {
        self.android.as_ref().map(|app| {
            json!([{
                "relation": ["delegate_permission/common.handle_all_urls"],
                "target": {
                    "namespace": "android_app",
                    "package_name": app.package,
                    "sha256_cert_fingerprints": app.cert_fingerprints,
                },
            }])
        })
    }
}

/// `TEAMID.bundle.id`: a ten-character Apple team id (upper-case letters and digits), a dot,
/// and a bundle id of letters, digits, hyphens and dots.
fn ios_app_id(id: &str) -> anyhow::Result<String> {
    let valid = id.split_once('.').is_some_and(|(team, bundle)| {
        team.len() == 10
            && team
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && !bundle.is_empty()
            && bundle.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    if !valid {
        bail!(
            "PHOTON_IOS_APP_IDS: {id:?} is not an app id of the form TEAMID.bundle.id \
             (a 10-character team id such as ABCDE12345, then the bundle id)"
        );
    }
    Ok(id.to_owned())
}

/// An Android application id: two or more dot-separated parts, each a letter followed by
/// letters, digits or underscores.
fn android_package_name(package: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = package.split('.').collect();
    let valid = parts.len() >= 2
        && parts.iter().all(|part| {
            part.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if !valid {
        bail!(
            "PHOTON_ANDROID_PACKAGE: {package:?} is not an Android application id such as \
             com.example.photon"
        );
    }
    Ok(package.to_owned())
}

/// A SHA-256 certificate fingerprint as `keytool` prints it (32 colon-separated hex bytes), or
/// as 64 hex digits; either case. Normalised to upper case with colons.
fn cert_fingerprint(fingerprint: &str) -> anyhow::Result<String> {
    let hex: String = fingerprint.chars().filter(|c| *c != ':').collect();
    let colons_right =
        !fingerprint.contains(':') || fingerprint.split(':').all(|byte| byte.len() == 2);
    if hex.len() != 64 || !colons_right || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "PHOTON_ANDROID_CERT_SHA256: {fingerprint:?} is not a SHA-256 fingerprint \
             (32 hex bytes such as 14:6D:E9:…, as `keytool -list -v` prints them)"
        );
    }
    let hex = hex.to_ascii_uppercase();
    Ok(hex
        .as_bytes()
        .chunks(2)
        .map(|byte| String::from_utf8_lossy(byte).into_owned())
        .collect::<Vec<_>>()
        .join(":"))
}

/// `GET /.well-known/apple-app-site-association` (JSON, though the name has no extension).
pub async fn apple(State(state): State<AppState>) -> Response {
    serve(state.config.invite.app_links.apple())
}

/// `GET /.well-known/assetlinks.json`.
pub async fn android(State(state): State<AppState>) -> Response {
    serve(state.config.invite.app_links.android())
}

/// The document, cached for an hour (both platforms' fetchers cache it longer anyway), or 404.
fn serve(document: Option<serde_json::Value>) -> Response {
    match document {
        Some(document) => (
            [
                (CONTENT_TYPE, "application/json"),
                (CACHE_CONTROL, "public, max-age=3600"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            document.to_string(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [
                (CONTENT_TYPE, "text/plain; charset=utf-8"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            "no app is configured for this server's links\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const FINGERPRINT: &str = "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5";

    #[test]
    fn nothing_set_means_no_files() {
        let links = AppLinks::resolve(&[], None, &[]).unwrap_or_default();
        assert_eq!(links, AppLinks::default());
        assert!(links.apple().is_none());
        assert!(links.android().is_none());
        // A blank variable is as good as none.
        let links = AppLinks::resolve(&strings(&[" "]), Some(""), &strings(&[""]));
        assert_eq!(links.ok(), Some(AppLinks::default()));
    }

    #[test]
    fn fingerprints_are_normalised_to_upper_case_with_colons() {
        let lower = FINGERPRINT.to_ascii_lowercase();
        let bare = FINGERPRINT.replace(':', "");
        for form in [FINGERPRINT, lower.as_str(), bare.as_str()] {
            assert_eq!(cert_fingerprint(form).ok().as_deref(), Some(FINGERPRINT));
        }
    }

    #[test]
    fn bad_fingerprints_are_refused() {
        let short = &FINGERPRINT[..FINGERPRINT.len() - 3];
        let odd = format!("{}:5", &FINGERPRINT[..FINGERPRINT.len() - 3]);
        let misgrouped = FINGERPRINT.replacen("14:6D", "146:D", 1);
        let not_hex = FINGERPRINT.replacen("14", "G4", 1);
        for bad in [short, &odd, &misgrouped, &not_hex, "", "sha256"] {
            assert!(cert_fingerprint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn app_ids_need_a_team_and_a_bundle() {
        assert!(ios_app_id("ABCDE12345.com.example.photon").is_ok());
        assert!(ios_app_id("ABCDE12345.com.example.photon-beta").is_ok());
        for bad in [
            "com.example.photon",
            "ABCDE1234.com.example",
            "abcde12345.com.example",
            "ABCDE12345.",
            "ABCDE12345.com..example",
            "ABCDE12345.com/example",
            "ABCDE12345.com.example\"",
        ] {
            assert!(ios_app_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn packages_are_android_application_ids() {
        assert!(android_package_name("com.example.photon").is_ok());
        assert!(android_package_name("app.photon_beta").is_ok());
        for bad in [
            "photon",
            "com..photon",
            "com.1photon",
            "com.photon-app",
            ".com.x",
        ] {
            assert!(android_package_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn package_and_certificate_go_together() {
        let fingerprint = strings(&[FINGERPRINT]);
        assert!(AppLinks::resolve(&[], Some("com.example.photon"), &[]).is_err());
        assert!(AppLinks::resolve(&[], None, &fingerprint).is_err());
        let links = AppLinks::resolve(&[], Some("com.example.photon"), &fingerprint);
        let android = links.ok().and_then(|l| l.android());
        assert_eq!(
            android,
            Some(json!([{
                "relation": ["delegate_permission/common.handle_all_urls"],
                "target": {
                    "namespace": "android_app",
                    "package_name": "com.example.photon",
                    "sha256_cert_fingerprints": [FINGERPRINT],
                },
            }]))
        );
    }
}
