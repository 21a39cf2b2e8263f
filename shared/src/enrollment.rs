//! What a probe sends to enroll, validated: the free-text fields end up in the collector's
//! logs, listings and audit log, so they are bounded and free of control characters here,
//! once, rather than escaped at every place that prints them.

/// Longest hostname accepted (a DNS label is at most 63 bytes; a short FQDN fits too).
pub const MAX_HOSTNAME_LEN: usize = 64;
/// Longest software version string accepted (e.g. `0.1.0-rc.1+git.abcdef0`).
pub const MAX_VERSION_LEN: usize = 64;
/// Longest enrollment token accepted (`<64 hex>.<64 hex>` is 129 bytes).
pub const MAX_TOKEN_LEN: usize = 256;
/// Largest certificate signing request accepted (an ECDSA or RSA-4096 CSR is well under).
pub const MAX_CSR_BYTES: usize = 4096;

/// Random bytes in an enrollment token's secret (and an API token's).
pub const TOKEN_SECRET_BYTES: usize = 32;

/// An enrollment token as the volunteer pastes it: `<secret>.<CA fingerprint>`, both 64
/// lowercase hex digits. The collector checks the secret; the probe pins the fingerprint
/// before it trusts the collector it enrolls with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentToken<'a> {
    pub secret: &'a str,
    pub ca_fingerprint: &'a str,
}

impl<'a> EnrollmentToken<'a> {
    /// The token's two parts, or `None` if `text` is not of the form above.
    pub fn parse(text: &'a str) -> Option<Self> {
        let (secret, ca_fingerprint) = text.split_once('.')?;
        let well_formed = crate::digest::is_hex_lower(secret, 2 * TOKEN_SECRET_BYTES)
            && crate::digest::is_hex_lower(ca_fingerprint, 64);
        well_formed.then_some(Self {
            secret,
            ca_fingerprint,
        })
    }
}

impl std::fmt::Display for EnrollmentToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.secret, self.ca_fingerprint)
    }
}

/// An enrollment request whose fields are within bounds. The token and CSR are still to be
/// checked against the collector's state (token store, CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollRequest {
    pub token: String,
    /// Empty when the probe does not know its hostname.
    pub hostname: String,
    pub software_version: String,
    pub csr_der: Vec<u8>,
}

/// Why an enrollment request was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field `{field}`: {reason}")]
pub struct EnrollFieldError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> EnrollFieldError {
    EnrollFieldError {
        field,
        reason: reason.into(),
    }
}

/// Hostnames are refused rather than sanitised: a name with control characters is not a
/// hostname, and a cleaned-up one would be a name the volunteer never chose. Letters and
/// digits (any script), space and `- _ . @ ' ( )` (a probe's config may name it "Kitchen
/// Pi"), at most [`MAX_HOSTNAME_LEN`] bytes; empty is allowed. No control, format (bidi)
/// or escape characters, so the name is safe to print in logs and terminals as is.
pub fn check_hostname(hostname: &str) -> Result<(), EnrollFieldError> {
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(refuse(
            "hostname",
            format!("longer than {MAX_HOSTNAME_LEN} bytes"),
        ));
    }
    if let Some(bad) = hostname.chars().find(|c| {
        !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '@' | '\'' | '(' | ')'))
    }) {
        // The offending character is named by its code, never echoed as is.
        return Err(refuse(
            "hostname",
            format!(
                "character U+{:04X} is not allowed (letters, digits, space and - _ . @ ' ( ) only)",
                u32::from(bad)
            ),
        ));
    }
    Ok(())
}

/// Printable ASCII without spaces, 1..=[`MAX_VERSION_LEN`] bytes.
pub fn check_software_version(version: &str) -> Result<(), EnrollFieldError> {
    if version.is_empty() || version.len() > MAX_VERSION_LEN {
        return Err(refuse(
            "software_version",
            format!("must be 1..={MAX_VERSION_LEN} bytes"),
        ));
    }
    if !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse(
            "software_version",
            "only printable ASCII without spaces is allowed",
        ));
    }
    Ok(())
}

impl EnrollRequest {
    /// Checks every field's bounds without taking them; the error names the field.
    pub fn check(
        token: &str,
        hostname: &str,
        software_version: &str,
        csr_der: &[u8],
    ) -> Result<(), EnrollFieldError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(refuse(
                "token",
                format!("longer than {MAX_TOKEN_LEN} bytes"),
            ));
        }
        check_hostname(hostname)?;
        check_software_version(software_version)?;
        if csr_der.is_empty() || csr_der.len() > MAX_CSR_BYTES {
            return Err(refuse(
                "csr_der",
                format!("must be 1..={MAX_CSR_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// Checks every field's bounds ([`Self::check`]); the error names the field.
    pub fn new(
        token: String,
        hostname: String,
        software_version: String,
        csr_der: Vec<u8>,
    ) -> Result<Self, EnrollFieldError> {
        Self::check(&token, &hostname, &software_version, &csr_der)?;
        Ok(Self {
            token,
            hostname,
            software_version,
            csr_der,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hostname: &str, version: &str) -> Result<EnrollRequest, EnrollFieldError> {
        EnrollRequest::new("t".into(), hostname.into(), version.into(), vec![1])
    }

    #[test]
    fn tokens_round_trip_and_refuse_other_forms() {
        let secret = "a".repeat(64);
        let fingerprint = "0123456789abcdef".repeat(4);
        let text = format!("{secret}.{fingerprint}");
        let token = EnrollmentToken::parse(&text).expect("well formed");
        assert_eq!(
            (token.secret, token.ca_fingerprint),
            (&secret[..], &fingerprint[..])
        );
        assert_eq!(token.to_string(), text);
        for bad in [
            String::new(),
            secret.clone(),
            format!("{secret}.{}", fingerprint.to_uppercase()),
            format!("{secret}.{fingerprint}0"),
            format!("{}.{fingerprint}", &secret[1..]),
            format!("{secret}:{fingerprint}"),
        ] {
            assert_eq!(EnrollmentToken::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn hostnames_and_versions_are_bounded_and_plain() {
        assert!(request("pi-4.example_net", "0.1.0").is_ok());
        assert!(request("Küchen Pi (2)", "0.1.0").is_ok());
        assert!(request("", "0.1.0-rc.1+git.abc").is_ok());
        for hostname in [
            "pi\nINFO fake log line",
            "pi\x1b[31mred",
            "pi\thost",
            "pi\u{202e}",
        ] {
            let err = request(hostname, "0.1.0").unwrap_err();
            assert_eq!(err.field, "hostname");
            assert!(!err.to_string().contains('\x1b') && !err.to_string().contains('\n'));
        }
        assert_eq!(
            request(&"a".repeat(65), "0.1.0").unwrap_err().field,
            "hostname"
        );
        let huge = "1".repeat(3 << 20);
        assert_eq!(request("pi", &huge).unwrap_err().field, "software_version");
        assert_eq!(request("pi", "").unwrap_err().field, "software_version");
        assert_eq!(
            request("pi", "0.1\n").unwrap_err().field,
            "software_version"
        );
        let err = EnrollRequest::new("t".into(), "pi".into(), "0.1.0".into(), vec![0; 5000]);
        assert_eq!(err.unwrap_err().field, "csr_der");
        let err = EnrollRequest::new("t".repeat(300), "pi".into(), "0.1.0".into(), vec![1]);
        assert_eq!(err.unwrap_err().field, "token");
    }
}
