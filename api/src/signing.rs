//! Signatures on the URLs the server hands out and later serves itself (local object
//! storage, session archives): HMAC-SHA256 over a URL's fields, under a key derived from the
//! server's secret with a label of its own per use, so a signature made for one use is
//! worthless for any other and the secret itself never signs anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks lists of fields for one use.
#[derive(Clone)]
pub struct Signer {
    /// HMAC keyed with the derived key, cloned for every signature.
    mac: HmacSha256,
}

impl Signer {
    /// The signer for `label`'s use of `secret`.
    pub fn new(secret: &SecretString, label: &str) -> anyhow::Result<Self> {
        let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())?;
        mac.update(label.as_bytes());
        let key = mac.finalize().into_bytes();
        Ok(Self {
            mac: HmacSha256::new_from_slice(&key)?,
        })
    }

    fn mac(&self, fields: &[&str]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        // Each field with its length first, so no two lists of fields sign the same bytes.
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// The signature of `fields`, URL-safe base64.
    pub fn sign(&self, fields: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(fields).finalize().into_bytes())
    }

    /// Whether `signature` (from a URL) signs `fields`, compared in constant time.
    pub fn verify(&self, fields: &[&str], signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(fields).verify_slice(&signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("a test secret that is long enough to sign".to_owned())
    }

    #[test]
    fn a_signature_holds_only_for_its_fields_and_its_use() {
        let links = Signer::new(&secret(), "one use").unwrap();
        let other = Signer::new(&secret(), "another use").unwrap();
        let sig = links.sign(&["GET", "a", "1"]);
        assert!(links.verify(&["GET", "a", "1"], &sig));
        assert!(!links.verify(&["GET", "a", "2"], &sig));
        // Moving text between fields changes the signature.
        assert!(!links.verify(&["GET", "a\n1"], &sig));
        assert!(!links.verify(&["GETa", "1"], &sig));
        assert!(!links.verify(&["GET", "a1", ""], &sig));
        assert!(!other.verify(&["GET", "a", "1"], &sig));
        assert!(!links.verify(&["GET", "a", "1"], "not base64!"));
        assert!(!links.verify(&["GET", "a", "1"], ""));
    }
}
