//! What only Apple does: a client secret that is an ES256 JWT signed with the team's key,
//! and the person's name, which arrives once (on first consent) as the `user` field of the
//! callback's form rather than in the ID token.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// How long one client secret is good for. Apple allows six months; a short life means a
/// leaked one (in a proxy's log, say) is soon worthless.
const SECRET_LIFETIME: Duration = Duration::minutes(10);
/// A cached secret is replaced this long before it expires, so one never expires in flight.
const SECRET_RENEW_BEFORE: Duration = Duration::minutes(2);

/// The Sign in with Apple key of a team, as Apple issues it: a PKCS#8 PEM (`.p8`) holding
/// an EC P-256 private key.
#[derive(Clone)]
pub struct AppleKey {
    /// PKCS#8 DER, what the ES256 signer takes.
    key: EncodingKey,
}

/// Never the key, not even its length.
impl std::fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppleKey(..)")
    }
}

impl AppleKey {
    /// Reads and checks the key file (named by `APPLE_PRIVATE_KEY`).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path)
            .map(SecretString::from)
            .with_context(|| format!("APPLE_PRIVATE_KEY: cannot read {}", path.display()))?;
        Self::from_pem(pem.expose_secret()).with_context(|| {
            format!(
                "APPLE_PRIVATE_KEY: {} is not an EC P-256 private key in PKCS#8 PEM form \
                 (the .p8 file Apple issues)",
                path.display()
            )
        })
    }

    fn from_pem(pem: &str) -> anyhow::Result<Self> {
        // The parse errors say nothing about the key's bytes, but are not needed either.
        let key = p256::SecretKey::from_pkcs8_pem(pem).map_err(|_| anyhow!("unreadable"))?;
        let der = key.to_pkcs8_der().map_err(|_| anyhow!("unencodable"))?;
        Ok(Self {
            key: EncodingKey::from_ec_der(der.as_bytes()),
        })
    }
}

/// Sign in with Apple's credentials.
#[derive(Debug, Clone)]
pub struct AppleCredentials {
    /// The Services ID (`APPLE_CLIENT_ID`): the `aud` of Apple's ID tokens.
    pub client_id: String,
    pub team_id: String,
    /// The key's id in the developer account (`APPLE_KEY_ID`).
    pub key_id: String,
    pub key: AppleKey,
}

#[derive(Serialize)]
struct SecretClaims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
}

/// Makes Apple client secrets, and reuses each until shortly before it expires.
pub struct ClientSecrets {
    credentials: AppleCredentials,
    /// Apple's issuer: the secret's audience.
    audience: String,
    cached: Mutex<Option<(SecretString, DateTime<Utc>)>>,
}

impl ClientSecrets {
    /// Signs a first secret, so a key that cannot sign fails start-up, not a sign-in.
    pub fn new(credentials: AppleCredentials, audience: String) -> anyhow::Result<Self> {
        let secrets = Self {
            credentials,
            audience,
            cached: Mutex::new(None),
        };
        secrets
            .current(Utc::now())
            .context("APPLE_PRIVATE_KEY cannot sign a client secret")?;
        Ok(secrets)
    }

    /// A secret good for at least [`SECRET_RENEW_BEFORE`] more.
    pub fn current(&self, now: DateTime<Utc>) -> anyhow::Result<SecretString> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((secret, expires_at)) = cached.as_ref()
            && now + SECRET_RENEW_BEFORE < *expires_at
        {
            return Ok(secret.clone());
        }
        let expires_at = now + SECRET_LIFETIME;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.credentials.key_id.clone());
        let claims = SecretClaims {
            iss: &self.credentials.team_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            aud: &self.audience,
            sub: &self.credentials.client_id,
        };
        let secret = jsonwebtoken::encode(&header, &claims, &self.credentials.key.key)
            .map(SecretString::from)
            .map_err(|err| anyhow!("signing failed: {:?}", err.kind()))?;
        *cached = Some((secret.clone(), expires_at));
        Ok(secret)
    }
}

/// The callback form's `user` field: `{"name":{"firstName","lastName"},"email"}`. Its e-mail
/// is not used (the signed ID token has it); the name is what the ID token lacks.
#[derive(Deserialize)]
struct FormUser {
    name: Option<FormName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FormName {
    first_name: Option<String>,
    last_name: Option<String>,
}

/// The display name in a `user` field, if it has one. Unreadable JSON is no name: the name
/// is a courtesy of the first consent, not something to fail a sign-in over.
pub fn name_from_form(user: &str) -> Option<String> {
    let user: FormUser = serde_json::from_str(user).ok()?;
    let name = user.name?;
    let full = [name.first_name, name.last_name]
        .into_iter()
        .flatten()
        .map(|part| part.trim().to_owned())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!full.is_empty()).then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::LineEnding;

    fn random_key() -> p256::SecretKey {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
                return key;
            }
        }
    }

    fn key_pair() -> (String, DecodingKey) {
        let key = random_key();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let public = key.public_key().to_encoded_point(false);
        (pem, DecodingKey::from_ec_der(public.as_bytes()))
    }

    fn credentials(pem: &str) -> AppleCredentials {
        AppleCredentials {
            client_id: "com.example.photon.web".to_owned(),
            team_id: "TEAM123456".to_owned(),
            key_id: "KEY1234567".to_owned(),
            key: AppleKey::from_pem(pem).unwrap(),
        }
    }

    #[test]
    fn a_client_secret_is_an_es256_jwt_apple_would_accept() {
        let (pem, public) = key_pair();
        let secrets =
            ClientSecrets::new(credentials(&pem), "https://appleid.apple.com".to_owned()).unwrap();
        let now = Utc::now();
        let secret = secrets.current(now).unwrap();

        let header = jsonwebtoken::decode_header(secret.expose_secret()).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEY1234567"));
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://appleid.apple.com"]);
        validation.set_issuer(&["TEAM123456"]);
        let claims =
            jsonwebtoken::decode::<serde_json::Value>(secret.expose_secret(), &public, &validation)
                .unwrap()
                .claims;
        assert_eq!(claims["sub"], "com.example.photon.web");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!(lifetime > 0 && lifetime <= 15 * 60, "{lifetime}");
    }

    #[test]
    fn a_client_secret_is_reused_until_it_nears_expiry() {
        let (pem, _) = key_pair();
        let secrets =
            ClientSecrets::new(credentials(&pem), "https://appleid.apple.com".into()).unwrap();
        let now = Utc::now();
        let first = secrets.current(now).unwrap();
        let soon = secrets.current(now + Duration::minutes(5)).unwrap();
        assert_eq!(first.expose_secret(), soon.expose_secret());
        let later = secrets.current(now + Duration::minutes(9)).unwrap();
        assert_ne!(first.expose_secret(), later.expose_secret());
    }

    #[test]
    fn only_p256_pkcs8_keys_are_accepted() {
        assert!(AppleKey::from_pem("not a key").is_err());
        // The same kind of key in SEC1 form (`BEGIN EC PRIVATE KEY`) is not what Apple issues.
        let sec1 = random_key().to_sec1_pem(LineEnding::LF).unwrap();
        assert!(AppleKey::from_pem(&sec1).is_err());
        let dir = tempfile::tempdir().unwrap();
        let missing = AppleKey::load(&dir.path().join("AuthKey.p8")).unwrap_err();
        assert!(format!("{missing:#}").contains("APPLE_PRIVATE_KEY"));
        let path = dir.path().join("AuthKey.pem");
        std::fs::write(&path, sec1.as_bytes()).unwrap();
        let wrong = AppleKey::load(&path).unwrap_err();
        assert!(format!("{wrong:#}").contains("not an EC P-256 private key"));
    }

    #[test]
    fn the_name_comes_from_the_first_consents_user_field() {
        let user = r#"{"name":{"firstName":"Ana","lastName":"Lima"},"email":"x@privaterelay.appleid.com"}"#;
        assert_eq!(name_from_form(user).as_deref(), Some("Ana Lima"));
        assert_eq!(
            name_from_form(r#"{"name":{"firstName":" Ana "}}"#).as_deref(),
            Some("Ana")
        );
        assert_eq!(name_from_form(r#"{"email":"a@example.com"}"#), None);
        assert_eq!(name_from_form(r#"{"name":{"firstName":"  "}}"#), None);
        assert_eq!(name_from_form("not json"), None);
    }
}
