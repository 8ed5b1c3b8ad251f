//! Apple's and Google's ID tokens: the signature (against the provider's JWKS), issuer,
//! audience, lifetime and nonce checked, and the account they vouch for read into a
//! [`Profile`].

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};

use super::jwks::{Jwks, JwksError};
use super::providers::{Profile, ProfileError};

/// Clock skew forgiven on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// What an ID token must match to be ours.
pub struct Expected<'a> {
    /// The `iss` values the provider signs with.
    pub issuers: &'a [String],
    /// Our client id: the token's `aud`.
    pub audience: &'a str,
    /// The signature algorithms the provider uses. Never `none` or a shared-secret HMAC:
    /// the JWKS is public, so an HMAC "signed" with a key from it proves nothing.
    pub algorithms: &'a [Algorithm],
    /// When the sign-in started (seconds since the epoch): a token issued before it was not
    /// made for it.
    pub not_issued_before: i64,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// The claims we read. `sub`, `iss`, `aud` and `exp` are checked by the validation.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    nonce: Option<String>,
    email: Option<String>,
    /// A JSON boolean at Google; Apple has sent both `true` and `"true"`.
    #[serde(default, deserialize_with = "bool_or_string")]
    email_verified: Option<bool>,
    /// Google, with the `profile` scope.
    name: Option<String>,
    picture: Option<String>,
}

/// `true`, `false`, `"true"` or `"false"` (or absent or null).
fn bool_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flag>::deserialize(deserializer)? {
        None => None,
        Some(Flag::Bool(flag)) => Some(flag),
        Some(Flag::Text(text)) => match text.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => return Err(serde::de::Error::custom("not a boolean")),
        },
    })
}

/// A token whose signature, issuer, audience and lifetime check out. The caller compares
/// its nonce with the one it stored before taking the account from it.
pub struct Verified {
    pub nonce: Option<String>,
    claims: Claims,
}

impl Verified {
    /// The account, if the provider vouches for its e-mail address.
    pub fn into_profile(self) -> Result<Profile, ProfileError> {
        let claims = self.claims;
        let email = match (claims.email, claims.email_verified) {
            (Some(email), Some(true)) => email,
            _ => return Err(ProfileError::EmailUnverified),
        };
        Ok(Profile {
            subject: claims.sub,
            email,
            login: None,
            display_name: claims.name,
            avatar_url: claims.picture,
        })
    }
}

fn refuse(reason: impl Into<String>) -> ProfileError {
    ProfileError::Provider(reason.into())
}

/// Whether `key` may check a signature made with `alg`: the right key type and curve, and
/// the key's own `alg` (when it names one) the same.
fn key_fits(key: &Jwk, alg: Algorithm) -> bool {
    let type_fits = match (&key.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512) => {
            true
        }
        (AlgorithmParameters::EllipticCurve(params), Algorithm::ES256) => {
            params.curve == EllipticCurve::P256
        }
        _ => false,
    };
    let alg_fits = key
        .common
        .key_algorithm
        .is_none_or(|key_alg| key_alg.to_string() == format!("{alg:?}"));
    type_fits && alg_fits
}

/// A validation failure for the log, without the claim values a JSON error could quote.
fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "wrong algorithm",
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => "claims of the wrong shape",
        _ => "malformed",
    }
}

/// Checks an ID token end to end and reads its account.
pub async fn verify(
    http: &reqwest::Client,
    jwks: &Jwks,
    token: &str,
    expected: &Expected<'_>,
) -> Result<Verified, ProfileError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|err| refuse(format!("id_token: unreadable header: {err}")))?;
    if !expected.algorithms.contains(&header.alg) {
        return Err(refuse(format!(
            "id_token: algorithm {:?} refused",
            header.alg
        )));
    }
    let kid = header
        .kid
        .filter(|kid| !kid.is_empty() && kid.len() <= 256)
        .ok_or_else(|| refuse("id_token: no kid"))?;
    let key = jwks.key(http, &kid).await.map_err(|err| match err {
        JwksError::UnknownKid => {
            refuse("id_token: signed with a key the provider does not publish")
        }
        JwksError::Fetch(reason) => refuse(reason),
    })?;
    if !key_fits(&key, header.alg) {
        return Err(refuse("id_token: the key does not fit the algorithm"));
    }
    let decoding = DecodingKey::from_jwk(&key)
        .map_err(|err| refuse(format!("id_token: unusable key: {err}")))?;
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(expected.issuers);
    validation.set_audience(&[expected.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|err| refuse(format!("id_token: refused: {}", describe(err.kind()))))?
        .claims;
    let leeway = LEEWAY_SECS as i64;
    if claims.iat > expected.now + leeway || claims.iat < expected.not_issued_before - leeway {
        return Err(refuse("id_token: issued outside this sign-in"));
    }
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err(refuse("id_token: malformed sub"));
    }
    Ok(Verified {
        nonce: claims.nonce.clone(),
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Flagged {
        #[serde(default, deserialize_with = "bool_or_string")]
        flag: Option<bool>,
    }

    fn flag(json: &str) -> Option<Option<bool>> {
        serde_json::from_str::<Flagged>(json).ok().map(|f| f.flag)
    }

    #[test]
    fn apple_booleans_may_be_strings() {
        assert_eq!(flag(r#"{"flag": true}"#), Some(Some(true)));
        assert_eq!(flag(r#"{"flag": "true"}"#), Some(Some(true)));
        assert_eq!(flag(r#"{"flag": false}"#), Some(Some(false)));
        assert_eq!(flag(r#"{"flag": "false"}"#), Some(Some(false)));
        assert_eq!(flag(r#"{"flag": null}"#), Some(None));
        assert_eq!(flag(r#"{}"#), Some(None));
        assert_eq!(flag(r#"{"flag": "yes"}"#), None);
        assert_eq!(flag(r#"{"flag": 1}"#), None);
    }

    #[test]
    fn a_key_fits_only_its_own_algorithm_family() {
        let rsa: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "kid": "r", "alg": "RS256", "use": "sig",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            "e": "AQAB"
        }))
        .unwrap();
        assert!(key_fits(&rsa, Algorithm::RS256));
        assert!(!key_fits(&rsa, Algorithm::RS512), "the key names RS256");
        assert!(!key_fits(&rsa, Algorithm::ES256));
        assert!(!key_fits(&rsa, Algorithm::HS256));
        let ec: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "kid": "e", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }))
        .unwrap();
        assert!(key_fits(&ec, Algorithm::ES256));
        assert!(!key_fits(&ec, Algorithm::RS256));
    }
}
