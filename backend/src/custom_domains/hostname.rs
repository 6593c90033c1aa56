//! Which hostnames a user may add: a fully qualified DNS name in its ASCII
//! form, not a wildcard or an address, and not one of berth's own names
//! (an app's hostname under the apps domain belongs to that app, and the
//! console's to berth).

/// The hostname as stored (lowercase, no trailing dot), or what is wrong
/// with it, as the user reads it next to the field.
pub fn normalize(
    input: &str,
    apps_domain: &str,
    console_host: Option<&str>,
) -> Result<String, String> {
    let host = input.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err("enter a domain such as www.example.com".into());
    }
    if host.contains("://") || host.contains('/') || host.contains(':') {
        return Err("enter the domain alone, without a scheme, port or path".into());
    }
    if !host.is_ascii() {
        return Err("write an internationalized name in its ASCII (xn--) form".into());
    }
    if host.starts_with("*.") {
        return Err("wildcard domains are not supported; add each name".into());
    }
    if host.len() > 253 {
        return Err("must be at most 253 characters long".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return Err("must be a fully qualified name such as www.example.com".into());
    }
    for label in &labels {
        crate::validate::dns_label(label, 63)
            .map_err(|why| format!("each part between dots {why}"))?;
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("must be a domain name, not an IP address".into());
    }
    if !berth_common::names::public_domain(&host) {
        return Err("names under localhost cannot be reached from the internet".into());
    }
    let apps_domain = apps_domain.trim_matches('.').to_ascii_lowercase();
    if host == apps_domain || host.ends_with(&format!(".{apps_domain}")) {
        return Err(format!(
            "names under {apps_domain} are berth's own; every app already has one"
        ));
    }
    if console_host.is_some_and(|console| console.eq_ignore_ascii_case(&host)) {
        return Err("this is berth's own hostname".into());
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    fn check(input: &str) -> Result<String, String> {
        normalize(input, "apps.example.com", Some("berth.example.com"))
    }

    #[test]
    fn a_domain_is_stored_lowercase_without_its_final_dot() {
        assert_eq!(check(" Shop.Example.ORG. ").unwrap(), "shop.example.org");
        assert_eq!(
            check("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn berths_own_names_addresses_and_malformed_names_are_refused() {
        for bad in [
            "",
            "https://shop.example.org",
            "shop.example.org:8443",
            "shop.example.org/path",
            "bücher.example",
            "*.example.org",
            "localhost",
            "shop.localhost",
            "intranet",
            "192.168.1.10",
            "-shop.example.org",
            "shop..example.org",
            "shop_1.example.org",
            "web.alice.apps.example.com",
            "apps.example.com",
            "BERTH.example.com",
        ] {
            assert!(check(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check(&format!("{}.example.org", "a".repeat(64))).is_err());
        assert!(check(&format!("{}example.org", "a.".repeat(123))).is_err());
    }
}
