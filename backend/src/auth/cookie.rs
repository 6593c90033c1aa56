//! Browser sessions: the refresh token lives in an `HttpOnly`,
//! `SameSite=Strict` cookie, so no page script can read it; the access
//! token stays in the page's memory.
//!
//! A client asks for the cookie by sending `X-Berth-Session: cookie` with
//! login (or `?browser=true` to GitHub sign-in). The cookie is only read
//! from requests that carry that header too: a cross-site page cannot add a
//! custom header without a CORS preflight, which berth never grants, so a
//! forged request cannot use the cookie (on top of SameSite).
//!
//! Over https the cookies berth relies on are `__Host-` prefixed (Secure,
//! `Path=/`, no `Domain`). Tenant apps may answer on a sibling subdomain of
//! berth's (`*.apps.example.com` next to `berth.example.com`), which is the
//! same site: such an app can set cookies for `example.com` that the
//! browser then sends to berth ("cookie tossing"), for instance its own
//! session's refresh token. Browsers refuse a `__Host-` cookie from any
//! other host, and berth reads no other name. A plain-http install
//! (`http://127.0.0.1:8080`) cannot keep a Secure cookie and keeps the
//! unprefixed name, scoped to `/api/v1/auth`.

use crate::state::ApiSettings;
use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

/// The session cookie's name over plain http.
pub const COOKIE: &str = "berth_refresh";
/// Its name over https.
pub const HOST_COOKIE: &str = "__Host-berth_refresh";
pub const MODE_HEADER: &str = "x-berth-session";
const PATH: &str = "/api/v1/auth";

/// Whether berth is reached over https, where cookies are Secure and
/// `__Host-` prefixed.
pub fn secure(settings: &ApiSettings) -> bool {
    settings
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

/// A cookie named after `name` (`__Host-<name>` over https, with `Path=/`;
/// else `<name>` on `http_path`), HttpOnly, with `same_site`.
pub fn scoped(
    settings: &ApiSettings,
    name: &'static str,
    http_path: &'static str,
    same_site: SameSite,
    value: String,
) -> Cookie<'static> {
    let secure = secure(settings);
    let (name, path) = if secure {
        (format!("__Host-{name}"), "/")
    } else {
        (name.to_owned(), http_path)
    };
    Cookie::build((name, value))
        .http_only(true)
        .same_site(same_site)
        .secure(secure)
        .path(path)
        .build()
}

/// The value of the cookie `scoped` names `name`, if the request has it.
pub fn scoped_value(settings: &ApiSettings, jar: &CookieJar, name: &str) -> Option<String> {
    let name = if secure(settings) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    };
    jar.get(&name)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether the request asks for (and may use) the session cookie.
pub fn wants_cookie(headers: &HeaderMap) -> bool {
    headers
        .get(MODE_HEADER)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

/// The refresh token in the cookie, for requests that may use it.
pub fn refresh_token(
    settings: &ApiSettings,
    headers: &HeaderMap,
    jar: &CookieJar,
) -> Option<String> {
    wants_cookie(headers)
        .then(|| scoped_value(settings, jar, COOKIE))
        .flatten()
}

fn base(settings: &ApiSettings, value: String) -> Cookie<'static> {
    scoped(settings, COOKIE, PATH, SameSite::Strict, value)
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

    fn https() -> ApiSettings {
        ApiSettings {
            public_url: Some("https://berth.example.com".into()),
            ..ApiSettings::default()
        }
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_host_prefixed_over_https() {
        let jar = with_session(CookieJar::new(), &https(), "t0ken".into());
        let set = format!("{};", jar.get(HOST_COOKIE).unwrap());
        for part in [
            "__Host-berth_refresh=t0ken;",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/;",
            "Max-Age=2592000",
        ] {
            assert!(set.contains(part), "{part} in {set}");
        }
        assert!(!set.contains("Domain"), "{set}");
        let plain = with_session(CookieJar::new(), &ApiSettings::default(), "t".into());
        let plain = plain.get(COOKIE).unwrap().to_string();
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(plain.contains("Path=/api/v1/auth"), "{plain}");
    }

    #[test]
    fn the_cookie_is_only_read_with_the_mode_header_and_by_its_own_name() {
        let plain = ApiSettings::default();
        let jar = CookieJar::new().add(Cookie::new(COOKIE, "t0ken"));
        let mut headers = HeaderMap::new();
        assert_eq!(refresh_token(&plain, &headers, &jar), None);
        headers.insert(MODE_HEADER, HeaderValue::from_static("Cookie"));
        assert_eq!(
            refresh_token(&plain, &headers, &jar).as_deref(),
            Some("t0ken")
        );
        // Over https only the prefixed cookie counts.
        assert_eq!(refresh_token(&https(), &headers, &jar), None);
        let jar = jar.add(Cookie::new(HOST_COOKIE, "h0st"));
        assert_eq!(
            refresh_token(&https(), &headers, &jar).as_deref(),
            Some("h0st")
        );
    }
}
