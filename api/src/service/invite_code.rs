//! Invite codes: 16 symbols of Crockford's base-32 alphabet (80 random bits), shown in groups
//! of four (`7K3M-9QXR-2VHD-4TNB`). The alphabet has no I, L, O or U, and reading a code back
//! forgives case, spaces, dashes and the look-alikes O→0 and I/L→1, so a code read aloud or
//! copied by hand still works. URL-safe as displayed.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LEN: usize = 16;

/// A new random code in its stored form (no dashes).
pub fn generate() -> String {
    let mut rng = rand::rng();
    (0..LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The form shown to people: groups of four joined by dashes.
pub fn display(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The stored form of what someone typed, or `None` when it cannot be a code at all.
pub fn normalize(input: &str) -> Option<String> {
    let mut code = String::with_capacity(LEN);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        code.push(c);
        if code.len() > LEN {
            return None;
        }
    }
    (code.len() == LEN).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_normalize_to_themselves() {
        for _ in 0..100 {
            let code = generate();
            assert_eq!(code.len(), LEN);
            assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
            assert_eq!(normalize(&display(&code)).as_deref(), Some(code.as_str()));
        }
    }

    #[test]
    fn typing_mistakes_are_forgiven() {
        assert_eq!(
            normalize("o1l2-abcd efgh-jkmn").as_deref(),
            Some("0112ABCDEFGHJKMN")
        );
    }

    #[test]
    fn garbage_is_not_a_code() {
        for bad in [
            "",
            "SHORT",
            "0112ABCDEFGHJKMNP",
            "0112ABCDEFGHJKMU",
            "0112ABCDEFGHJKM\u{0}",
            "ÅÅÅÅÅÅÅÅÅÅÅÅÅÅÅÅ",
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn codes_do_not_repeat() {
        let codes: std::collections::HashSet<_> = (0..1000).map(|_| generate()).collect();
        assert_eq!(codes.len(), 1000);
    }
}
