//! Percent-encoding for the AMQP URL the handle reports.

/// Percent-encode everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding() {
        assert_eq!(super::percent_encode("/"), "%2f");
        assert_eq!(super::percent_encode("p@ss:w/rd"), "p%40ss%3aw%2frd");
        assert_eq!(super::percent_encode("guest"), "guest");
    }
}
