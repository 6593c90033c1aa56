//! GitHub's pagination: the `Link` header's `rel="next"` URL.

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
