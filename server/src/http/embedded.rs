//! Pages embedded in the binary (the playground and the console): each file served with its
//! content type, a strict Content-Security-Policy ([`policy`]) and headers that refuse framing
//! and sniffing. Nothing is fetched from another origin; the only inline style a page may carry
//! is admitted by a nonce, new for each page, that the server writes into the page's
//! `<meta name="csp-nonce">`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rust_embed::Embed;

/// Where `index.html` wants the page's nonce.
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("woff2") => "font/woff2",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The origin's host as the client named it, if it is a plain `host[:port]` (anything else could
/// bend the policy it is written into).
fn origin_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plain.then_some(host)
}

/// The Content-Security-Policy: everything from this origin only, fonts and icons also as
/// `data:` URLs (they are inlined in the bundle), no inline script, inline styles only with the
/// page's nonce, the GraphQL endpoint and its WebSocket on this host, and no framing, `<base>`,
/// plugins or form posts.
pub fn policy(host: Option<&str>, nonce: Option<&str>) -> String {
    let style = match nonce {
        Some(nonce) => format!("style-src 'self' 'nonce-{nonce}'"),
        None => "style-src 'self'".to_owned(),
    };
    let connect = match host {
        Some(host) => format!("connect-src 'self' ws://{host} wss://{host}"),
        None => "connect-src 'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; {style}; img-src 'self' data:; \
         font-src 'self' data:; {connect}; frame-ancestors 'none'; base-uri 'none'; \
         object-src 'none'; form-action 'none'"
    )
}

/// The headers on every playground response.
fn hardened(mut response: Response, csp: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn not_found(csp: &str) -> Response {
    hardened((StatusCode::NOT_FOUND, "not found").into_response(), csp)
}

fn file(path: &str, body: Vec<u8>, cache: &'static str, csp: &str) -> Response {
    let response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response();
    hardened(response, csp)
}

/// 16 random bytes, base64: new for each page. `None` if the system has no randomness to give,
/// and then the page goes without (the dialogs' inline style is refused; nothing else changes).
fn new_nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Err(e) => {
            tracing::warn!(error = %e, "no randomness for a page's CSP nonce");
            None
        }
    }
}

/// A page's `index.html` (`None`: there is none), with a nonce for its inline styles when
/// `with_nonce`.
pub fn index(page: Option<Vec<u8>>, headers: &HeaderMap, uri: &Uri, with_nonce: bool) -> Response {
    let host = origin_host(headers, uri);
    let nonce = with_nonce.then(new_nonce).flatten();
    let csp = policy(host, nonce.as_deref());
    let Some(page) = page else {
        return not_found(&csp);
    };
    let page = String::from_utf8_lossy(&page)
        .replace(NONCE_PLACEHOLDER, nonce.as_deref().unwrap_or_default());
    // A nonce is new each time, and the page names its assets: the page is never stored.
    file("index.html", page.into_bytes(), "no-store", &csp)
}

/// The path of an asset called `name` under `assets/`, unless the name could reach outside it.
pub fn asset_path(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && !name.contains("..")
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0');
    plain.then(|| format!("assets/{name}"))
}

/// One of a page's `assets/` files at `path` (from [`asset_path`]); `None`: there is none.
pub fn asset(path: &str, body: Option<Vec<u8>>, headers: &HeaderMap, uri: &Uri) -> Response {
    let csp = policy(origin_host(headers, uri), None);
    match body {
        Some(body) => file(path, body, "public, max-age=300", &csp),
        None => not_found(&csp),
    }
}

/// The 404 of a page's folder.
pub fn missing(headers: &HeaderMap, uri: &Uri) -> Response {
    not_found(&policy(origin_host(headers, uri), None))
}

/// An embedded file's bytes.
pub fn embedded<E: Embed>(path: &str) -> Option<Vec<u8>> {
    E::get(path).map(|f| f.data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_host_is_written_into_the_policy() {
        let uri: Uri = "/playground".parse().unwrap();
        let with = |host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            origin_host(&headers, &uri).map(str::to_owned)
        };
        assert_eq!(with("127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(with("[::1]:8080").as_deref(), Some("[::1]:8080"));
        assert_eq!(with("ai.example.com").as_deref(), Some("ai.example.com"));
        for bad in [
            "a; script-src *",
            "a b",
            "evil.com/x",
            "user@host",
            "a'b",
            "",
        ] {
            assert_eq!(with(bad), None, "{bad}");
        }
        assert_eq!(origin_host(&HeaderMap::new(), &uri), None);
        let absolute: Uri = "http://ai.example.com:8443/playground".parse().unwrap();
        assert_eq!(
            origin_host(&HeaderMap::new(), &absolute),
            Some("ai.example.com:8443")
        );
    }

    #[test]
    fn an_asset_name_cannot_leave_the_assets_folder() {
        assert_eq!(
            asset_path("console.js").as_deref(),
            Some("assets/console.js")
        );
        for bad in [
            "../Cargo.toml",
            "a/../../b",
            "/etc/passwd",
            "a\\b",
            "",
            "a\0b",
        ] {
            assert_eq!(asset_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_policy_is_strict() {
        let csp = policy(Some("h:1"), Some("abc"));
        for part in [
            "default-src 'self'",
            "script-src 'self';",
            "style-src 'self' 'nonce-abc';",
            "connect-src 'self' ws://h:1 wss://h:1;",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{part}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        let bare = policy(None, None);
        assert!(bare.contains("style-src 'self';") && bare.contains("connect-src 'self';"));
        assert!(!bare.contains("ws:") && !bare.contains("nonce"), "{bare}");
    }
}
