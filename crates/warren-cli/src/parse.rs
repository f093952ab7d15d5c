//! Value parsers for command-line arguments: refuse what cannot work before connecting.

use std::time::Duration;

/// An AMQP URL: its scheme must be `amqp` or `amqps`.
pub fn amqp_url(s: &str) -> Result<String, String> {
    let scheme = s.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some(scheme) if scheme.eq_ignore_ascii_case("amqp") || scheme.eq_ignore_ascii_case("amqps") => {
            Ok(s.to_owned())
        }
        Some(scheme) => Err(format!(
            "unsupported URL scheme {scheme:?}: use amqp:// or amqps:// (e.g. amqp://guest:guest@127.0.0.1:5672/%2f)"
        )),
        None => Err(
            "not an AMQP URL: expected amqp://user:password@host:port/vhost or amqps://…".to_owned(),
        ),
    }
}

/// A duration (humantime syntax, e.g. `500ms`, `5s`) greater than zero.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be greater than zero (e.g. 500ms, 5s)".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_and_amqps_pass_other_schemes_fail() {
        assert!(amqp_url("amqp://guest:guest@127.0.0.1:5672/%2f").is_ok());
        assert!(amqp_url("AMQPS://h/%2f").is_ok());
        let err = amqp_url("http://127.0.0.1:15672").unwrap_err();
        assert!(err.contains("\"http\"") && err.contains("amqp://"), "{err}");
        assert!(amqp_url("127.0.0.1:5672")
            .unwrap_err()
            .contains("not an AMQP URL"));
    }

    #[test]
    fn zero_duration_is_refused() {
        assert!(positive_duration("0")
            .unwrap_err()
            .contains("greater than zero"));
        assert!(positive_duration("0s").is_err());
        assert_eq!(positive_duration("5s"), Ok(Duration::from_secs(5)));
    }
}
