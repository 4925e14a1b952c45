//! Twilio's request signature (`X-Twilio-Signature`): HMAC-SHA1 over the URL followed by the
//! POST parameters sorted by name, keyed with the auth token, base64-encoded.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Computes the signature Twilio sends for a POST to `url` with these form parameters.
/// Repeated keys are allowed; names and values are sorted byte-wise and de-duplicated.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (k, v) in pairs {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks an `X-Twilio-Signature` for a POST to `url` with these form parameters, the way
/// twilio-python's `RequestValidator` does: it accepts a signature computed over the URL as given,
/// over the URL with any explicit port removed, or over the URL with the scheme's default port
/// (`:443` for https, `:80` for http) added when it has none. Because Twilio drops `user:pass@`
/// before signing, the same variants without the userinfo are accepted too. A `#fragment` is never
/// signed by Twilio and is ignored. Every candidate is computed and compared in constant time.
pub fn validate(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for candidate in url_candidates(url) {
        let expected = sign(auth_token, &candidate, params);
        ok |= expected.as_bytes().ct_eq(signature.as_bytes());
    }
    ok.into()
}

/// The URL variants a signature may have been computed over (see [`validate`]), without duplicates.
fn url_candidates(url: &str) -> Vec<String> {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let mut bases = vec![url.to_string()];
    if let Some(parts) = UrlParts::split(url)
        && parts.userinfo.is_some()
    {
        bases.push(
            UrlParts {
                userinfo: None,
                ..parts
            }
            .join(),
        );
    }
    let mut out: Vec<String> = Vec::with_capacity(bases.len() * 2);
    for base in bases {
        let mut variants = vec![base.clone()];
        if let Some(parts) = UrlParts::split(&base) {
            match (parts.port, default_port(parts.scheme)) {
                (Some(_), _) => variants.push(
                    UrlParts {
                        port: None,
                        ..parts
                    }
                    .join(),
                ),
                (None, Some(default)) => variants.push(
                    UrlParts {
                        port: Some(default),
                        ..parts
                    }
                    .join(),
                ),
                (None, None) => {}
            }
        }
        for v in variants {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

fn default_port(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some("443")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("80")
    } else {
        None
    }
}

/// A URL cut into the pieces the port and userinfo variants change; everything else (path,
/// query, case, percent-encoding) is kept byte for byte, since it is signed as sent.
#[derive(Clone, Copy)]
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, after) = url.split_once("://")?;
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(authority_end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        // The port follows the last `:`, unless that colon is inside an IPv6 literal `[…]`.
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, Some(p)),
            _ => (host_port, None),
        };
        // `host:` with an empty port means the default port; treat it as no port.
        let port = port.filter(|p| !p.is_empty());
        Some(UrlParts {
            scheme,
            userinfo,
            host,
            port,
            rest,
        })
    }

    fn join(&self) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = self.userinfo {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(self.host);
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(p);
        }
        s.push_str(self.rest);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from twilio-python / twilio-node test suites and Twilio's security docs
    // (see the shared `signature-vectors.json`); token "12345" throughout.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn call_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ])
    }

    #[test]
    fn computes_the_python_library_vector() {
        assert_eq!(
            sign(TOKEN, URL, &call_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(validate(
            TOKEN,
            URL,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn computes_the_docs_example() {
        let params = pairs(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        assert_eq!(sign(TOKEN, url, &params), "L/OH5YylLD5NRKLltdqwSvS0BnU=");
        assert!(validate(
            TOKEN,
            url,
            &params,
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
    }

    #[test]
    fn accepts_signature_over_url_with_https_default_port_added() {
        let sig = "kvajT1Ptam85bY51eRf/AJRuM3w=";
        assert_eq!(
            sign(
                TOKEN,
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &call_params()
            ),
            sig
        );
        assert!(validate(TOKEN, URL, &call_params(), sig));
    }

    #[test]
    fn accepts_signature_over_url_with_http_default_port_added() {
        let url = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(validate(
            TOKEN,
            url,
            &call_params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn accepts_signature_over_url_with_explicit_port_removed() {
        let url = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(validate(
            TOKEN,
            url,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn accepts_signature_over_url_with_explicit_port_kept() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(
            sign(TOKEN, url, &call_params()),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        assert!(validate(
            TOKEN,
            url,
            &call_params(),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
    }

    #[test]
    fn duplicate_keys_are_sorted_and_deduplicated() {
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(sign(TOKEN, URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
        assert!(validate(
            TOKEN,
            URL,
            &params,
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        ));
    }

    #[test]
    fn array_parameter_values_in_any_order() {
        let sig = "83O6e2vORAoJHUNzJjDWN1jz+BA=";
        let a = pairs(&[
            ("MessagingBinding.Address", "+1325xxxxxxx"),
            ("MessagingBinding.Address", "+1415xxxxxxx"),
        ]);
        let b = pairs(&[
            ("MessagingBinding.Address", "+1415xxxxxxx"),
            ("MessagingBinding.Address", "+1325xxxxxxx"),
        ]);
        assert!(validate(TOKEN, URL, &a, sig));
        assert!(validate(TOKEN, URL, &b, sig));
    }

    #[test]
    fn urls_with_credentials_as_given_and_with_port_added() {
        let with_pass = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(validate(
            TOKEN,
            with_pass,
            &call_params(),
            "CukzLTc1tT5dXEDIHm/tKBanW10="
        ));
        assert!(validate(
            TOKEN,
            with_pass,
            &call_params(),
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI="
        ));
        let with_user = "https://user@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(validate(
            TOKEN,
            with_user,
            &call_params(),
            "2YRLlVAflCqxaNicjMpJcSTgzSs="
        ));
    }

    #[test]
    fn credentials_are_dropped_like_twilio_does() {
        // Twilio signs the URL without `user:pass@`.
        let with_pass = "https://user:pass@mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(validate(
            TOKEN,
            with_pass,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn fragment_is_not_signed() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2#rc=2&rp=ct,rt";
        assert!(validate(
            TOKEN,
            url,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn ipv6_host_port_variants() {
        let signed = "https://[::1]/cb?x=1";
        let sig = sign(TOKEN, signed, &call_params());
        assert!(validate(
            TOKEN,
            "https://[::1]:8443/cb?x=1",
            &call_params(),
            &sig
        ));
        let sig443 = sign(TOKEN, "https://[::1]:443/cb?x=1", &call_params());
        assert!(validate(TOKEN, signed, &call_params(), &sig443));
    }

    #[test]
    fn rejects_wrong_token() {
        assert!(!validate(
            "54321",
            URL,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn rejects_tampered_parameter() {
        let mut params = call_params();
        params[1].1 = "9999".to_string();
        assert!(!validate(
            TOKEN,
            URL,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn rejects_missing_or_extra_parameter() {
        let mut params = call_params();
        params.remove(1);
        assert!(!validate(
            TOKEN,
            URL,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        let mut extra = call_params();
        extra.push(("Extra".to_string(), "1".to_string()));
        assert!(!validate(
            TOKEN,
            URL,
            &extra,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn rejects_other_url_empty_and_garbage_signatures() {
        let other = "https://mycompany.com/other.php?foo=1&bar=2";
        assert!(!validate(
            TOKEN,
            other,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!validate(TOKEN, URL, &call_params(), ""));
        assert!(!validate(
            TOKEN,
            URL,
            &call_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8"
        ));
        assert!(!validate(TOKEN, URL, &call_params(), "not a signature"));
    }

    #[test]
    fn https_port_443_not_accepted_for_http_url() {
        // The default port added depends on the scheme.
        let url = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(!validate(
            TOKEN,
            url,
            &call_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
    }
}
