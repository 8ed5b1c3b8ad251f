//! QR codes as SVG, for invite links: drawn by the `qrcode` crate as one `<path>` of dark
//! modules on a light square, with the standard four-module quiet zone so any camera app
//! reads it. No script, no style, no external reference: safe inline in a page and on its own.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// Smallest side of the drawing, in CSS pixels (the page may scale it).
const MIN_SIDE: u32 = 256;

/// The QR code of `text` as a standalone SVG document, or `None` when `text` is too long to
/// encode (an invite URL is far below the limit; a public URL of kilobytes would not be).
pub fn svg_document(text: &str) -> Option<String> {
    // Medium error correction: survives a smudged or partly covered screen, and keeps an
    // invite URL at a size a phone reads from across a table.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(MIN_SIDE, MIN_SIDE)
            .dark_color(svg::Color("#000"))
            .light_color(svg::Color("#fff"))
            .build(),
    )
}

/// The same drawing as an `<svg>` element for an HTML page: no XML declaration, and a label
/// for screen readers.
pub fn svg_element(text: &str, label: &str) -> Option<String> {
    let document = svg_document(text)?;
    let element = match document.find("<svg") {
        Some(start) => &document[start..],
        None => document.as_str(),
    };
    Some(element.replacen(
        "<svg ",
        &format!(
            r#"<svg role="img" aria-label="{}" class="qr-code" "#,
            super::escape(label)
        ),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_one_svg_with_nothing_active_in_it() {
        let svg = svg_document("https://photon.example.com/join/7K3M-9QXR-2VHD-4TNB");
        let svg = svg.unwrap_or_default();
        assert!(
            svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"), "{svg}");
        for active in [
            "<script",
            "style",
            "href",
            " on",
            "<image",
            "<foreignObject",
        ] {
            assert!(!svg.contains(active), "{active} in {svg}");
        }
    }

    #[test]
    fn the_inline_form_is_labelled_and_has_no_declaration() {
        let svg =
            svg_element("https://x.example/join/A", "QR code \"of\" <this>").unwrap_or_default();
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"QR code &quot;of&quot; &lt;this&gt;\""),
            "{svg}"
        );
        assert!(!svg.contains("<?xml"));
    }

    #[test]
    fn text_too_long_for_a_qr_code_is_none() {
        assert!(svg_document(&"x".repeat(4000)).is_none());
    }
}
