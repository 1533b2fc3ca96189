//! The login page (`GET /`) and the two files it loads (`GET /app.js`, `GET /app.css`):
//! plain HTML, JavaScript and CSS, no build step. Every one of them is served with the
//! [`HEADERS`]: a [`CONTENT_SECURITY_POLICY`] that allows no inline script or style and
//! no other origin, so a value that ever reached the page as markup could not run.

/// One file of the page and how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The route (`GET`).
    pub path: &'static str,
    /// The `content-type`.
    pub content_type: &'static str,
    /// The content.
    pub body: &'static str,
}

/// The page: `GET /`.
pub const INDEX: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../static/index.html"),
};

/// Its script: `GET /app.js`.
pub const SCRIPT: Asset = Asset {
    path: "/app.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../static/app.js"),
};

/// Its style sheet: `GET /app.css`.
pub const STYLE: Asset = Asset {
    path: "/app.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("../static/app.css"),
};

/// Every file of the page.
pub const ASSETS: [Asset; 3] = [INDEX, SCRIPT, STYLE];

/// The page's `Content-Security-Policy`: scripts, style sheets, images and API calls from
/// the app's own origin only; no inline script or style, no plug-ins, no framing, no
/// `<base>`, forms posting only to the app.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The headers of every [`Asset`] response besides `content-type`.
pub const HEADERS: [(&str, &str); 2] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = INDEX.body;
        assert!(html.contains(r#"<script src="/app.js" defer></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/app.css">"#));
        assert_eq!(html.matches("<script").count(), 1, "one script, external");
        for inline in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!html.contains(inline), "the page has {inline:?}");
        }
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(
                !SCRIPT.body.contains(sink),
                "the script writes HTML: {sink}"
            );
        }
    }

    #[test]
    fn the_policy_is_one_header_line() {
        assert!(!CONTENT_SECURITY_POLICY.contains("  "));
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'; script-src 'self';"));
        assert!(CONTENT_SECURITY_POLICY.ends_with("frame-ancestors 'none'"));
    }
}
