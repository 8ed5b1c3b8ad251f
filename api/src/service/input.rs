//! Checks for text that arrives from clients: trimmed, bounded, and free of the characters
//! that break storage or display (NUL, other control characters, bidirectional overrides).

use url::Url;

use crate::error::{ApiError, ApiResult};

pub const MAX_TITLE_CHARS: usize = 80;
pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_EMAIL_BYTES: usize = 254;
pub const MAX_URL_BYTES: usize = 2048;

/// Characters that are never welcome in a name or title: control characters (NUL breaks
/// Postgres text) and the invisible bidirectional controls used to disguise text.
fn is_forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A one-line label: trimmed, 1..=`max_chars` characters, no forbidden characters.
pub fn label(field: &'static str, value: &str, max_chars: usize) -> ApiResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_input(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ApiError::bad_input(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(is_forbidden) {
        return Err(ApiError::bad_input(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An e-mail address, lower-cased: the account identity. Deliberately loose (one `@`, some
/// text on both sides, a dot in the domain, no spaces): sign-in providers verify addresses,
/// this only keeps out what cannot be one.
pub fn email(value: &str) -> ApiResult<String> {
    let email = value.trim().to_lowercase();
    let invalid = || ApiError::bad_input("email", "not a valid e-mail address");
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || is_forbidden(c))
    {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(invalid());
    }
    Ok(email)
}

/// An `https` (or `http`) URL such as an avatar.
pub fn web_url(field: &'static str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    let invalid = || ApiError::bad_input(field, format!("{field} must be an http(s) URL"));
    if value.len() > MAX_URL_BYTES {
        return Err(ApiError::bad_input(field, format!("{field} is too long")));
    }
    let url = Url::parse(value).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err(invalid());
    }
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(
            label("title", "  Beach day 🏖️ ", 80).ok().as_deref(),
            Some("Beach day 🏖️")
        );
        assert!(label("title", " \t ", 80).is_err());
        assert!(label("title", &"é".repeat(81), 80).is_err());
        assert!(label("title", &"é".repeat(80), 80).is_ok());
    }

    #[test]
    fn labels_refuse_control_and_bidi_characters() {
        assert!(label("title", "a\u{0}b", 80).is_err());
        assert!(label("title", "a\nb", 80).is_err());
        assert!(label("title", "evil\u{202E}gnp.exe", 80).is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            email(" Ana@Example.COM ").ok().as_deref(),
            Some("ana@example.com")
        );
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@example",
            "a b@example.com",
            "a@b@c.d",
        ] {
            assert!(email(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn web_urls_must_be_http() {
        assert!(web_url("avatarUrl", "https://example.com/a.png").is_ok());
        assert!(web_url("avatarUrl", "javascript:alert(1)").is_err());
        assert!(web_url("avatarUrl", "file:///etc/passwd").is_err());
        assert!(web_url("avatarUrl", "not a url").is_err());
    }
}
