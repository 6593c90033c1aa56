//! Hostnames as the backend and the deploy-worker both judge them.

/// Whether `domain` can get a publicly trusted certificate: not
/// `localhost` or a name under it, and not a bare IP address.
pub fn public_domain(domain: &str) -> bool {
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    !(domain.is_empty()
        || domain == "localhost"
        || domain.ends_with(".localhost")
        || domain.parse::<std::net::IpAddr>().is_ok()
        || !domain.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::public_domain;

    #[test]
    fn names_under_localhost_and_addresses_are_not_public() {
        assert!(!public_domain("localhost"));
        assert!(!public_domain("apps.localhost."));
        assert!(!public_domain("127.0.0.1"));
        assert!(!public_domain("intranet"));
        assert!(public_domain("apps.example.com"));
        assert!(public_domain("203.0.113.7.sslip.io"));
    }
}
