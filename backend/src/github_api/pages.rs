//! GitHub's pagination: listings come 100 items a page, the next page's
//! URL in the `Link` header's `rel="next"`.

use super::{check, unreachable, GitHubError, ReqwestGitHub};
use reqwest::Method;
use serde::de::DeserializeOwned;

/// Most pages followed for one listing (100 items each).
pub const MAX_PAGES: usize = 10;

impl ReqwestGitHub {
    /// Every item of a listing, following `Link: rel="next"` up to
    /// `MAX_PAGES`. Only URLs under the API are followed: the token goes
    /// nowhere else.
    pub(super) async fn get_all<T: DeserializeOwned, U: From<T>>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<Vec<U>, GitHubError> {
        let mut items = Vec::new();
        let mut url = format!("{}{path}", self.api);
        for _ in 0..MAX_PAGES {
            let response = self
                .to_url(Method::GET, &url, token)
                .send()
                .await
                .map_err(unreachable)?;
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next)
                .map(str::to_owned);
            let page: Vec<T> = check(response).await?.json().await.map_err(unreachable)?;
            items.extend(page.into_iter().map(U::from));
            match next {
                Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                _ => break,
            }
        }
        Ok(items)
    }
}

/// The `rel="next"` target of a `Link` header value.
pub fn next(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), r#"rel="next""# | "rel=next"));
        let target = target.trim();
        is_next
            .then(|| target.strip_prefix('<')?.strip_suffix('>'))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::next;

    #[test]
    fn the_next_page_is_found_among_the_others() {
        let link = r#"<https://api.github.com/user/repos?page=3>; rel="next", <https://api.github.com/user/repos?page=5>; rel="last", <https://api.github.com/user/repos?page=1>; rel="first""#;
        assert_eq!(next(link), Some("https://api.github.com/user/repos?page=3"));
        let last = r#"<https://api.github.com/user/repos?page=1>; rel="prev", <https://api.github.com/user/repos?page=1>; rel="first""#;
        assert_eq!(next(last), None);
        assert_eq!(next(""), None);
        assert_eq!(next("garbage; rel=\"next\""), None);
    }
}
