//! Browser sessions: the refresh token lives in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/api/v1/auth`, so no page script can
//! read it; the access token stays in the page's memory.
//!
//! A client asks for the cookie by sending `X-Berth-Session: cookie` with
//! login (or `?browser=true` to GitHub sign-in). The cookie is only read
//! from requests that carry that header too: a cross-site page cannot add a
//! custom header without a CORS preflight, which berth never grants, so a
//! forged request cannot use the cookie (on top of SameSite).

use crate::state::ApiSettings;
use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

pub const COOKIE: &str = "berth_refresh";
pub const MODE_HEADER: &str = "x-berth-session";
const PATH: &str = "/api/v1/auth";

/// Whether the request asks for (and may use) the session cookie.
pub fn wants_cookie(headers: &HeaderMap) -> bool {
    headers
        .get(MODE_HEADER)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

/// The refresh token in the cookie, for requests that may use it.
pub fn refresh_token(headers: &HeaderMap, jar: &CookieJar) -> Option<String> {
    wants_cookie(headers)
        .then(|| jar.get(COOKIE).map(|cookie| cookie.value().to_owned()))
        .flatten()
        .filter(|token| !token.is_empty())
}

fn base(settings: &ApiSettings, value: String) -> Cookie<'static> {
    // Secure whenever berth is reached over https; a plain-http local
    // install (http://127.0.0.1) could not keep a Secure cookie.
    let secure = settings
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    Cookie::build((COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path(PATH)
        .build()
}

/// Sets the session's refresh token, for as long as it is valid.
pub fn with_session(jar: CookieJar, settings: &ApiSettings, token: String) -> CookieJar {
    let mut cookie = base(settings, token);
    let ttl = settings.refresh_token_ttl.as_secs() as i64;
    cookie.set_max_age(cookie::time::Duration::seconds(ttl));
    jar.add(cookie)
}

/// Removes the cookie.
pub fn cleared(jar: CookieJar, settings: &ApiSettings) -> CookieJar {
    jar.remove(base(settings, String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_auth() {
        let settings = ApiSettings {
            public_url: Some("https://berth.example.com".into()),
            ..ApiSettings::default()
        };
        let jar = with_session(CookieJar::new(), &settings, "t0ken".into());
        let set = jar.get(COOKIE).unwrap().to_string();
        for part in [
            "berth_refresh=t0ken",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/api/v1/auth",
            "Max-Age=2592000",
        ] {
            assert!(set.contains(part), "{part} in {set}");
        }
        let plain = with_session(CookieJar::new(), &ApiSettings::default(), "t".into());
        assert!(!plain.get(COOKIE).unwrap().to_string().contains("Secure"));
    }

    #[test]
    fn the_cookie_is_only_read_with_the_mode_header() {
        let jar = CookieJar::new().add(Cookie::new(COOKIE, "t0ken"));
        let mut headers = HeaderMap::new();
        assert_eq!(refresh_token(&headers, &jar), None);
        headers.insert(MODE_HEADER, HeaderValue::from_static("Cookie"));
        assert_eq!(refresh_token(&headers, &jar).as_deref(), Some("t0ken"));
    }
}
