//! The SASL mechanisms of `connection.start` / `start-ok`, as RabbitMQ offers and reads
//! them: PLAIN and AMQPLAIN carry a user name and password; EXTERNAL (offered on TLS
//! connections that verify peers, as `rabbitmq_auth_mechanism_ssl`) names the user by
//! the client certificate's subject common name.

use crate::message::value_as_str;
use crate::tls::PeerCert;
use amq_protocol::types::parsing::parse_field_table;

/// What a `start-ok` asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Login {
    /// PLAIN or AMQPLAIN: a user name and password.
    Password(String, String),
    /// EXTERNAL: the user the client certificate names.
    External,
    /// An offered mechanism with a malformed response (refused as bad credentials).
    Malformed,
    /// EXTERNAL on a connection that was not offered it (RabbitMQ: 503
    /// `invalid authentication mechanism`).
    NotOffered,
}

/// The `mechanisms` of connection.start for a connection with `cert`.
pub(super) fn offered(cert: &PeerCert) -> &'static str {
    match cert {
        PeerCert::NotOffered => "PLAIN AMQPLAIN",
        _ => "PLAIN AMQPLAIN EXTERNAL",
    }
}

/// Reads a start-ok's mechanism and response.
pub(super) fn parse(mechanism: &str, response: &[u8], cert: &PeerCert) -> Login {
    match mechanism {
        "EXTERNAL" if *cert == PeerCert::NotOffered => Login::NotOffered,
        // Like RabbitMQ's, the response (an authorization identity) is not read.
        "EXTERNAL" => Login::External,
        _ => match credentials(mechanism, response) {
            Some((user, password)) => Login::Password(user, password),
            None => Login::Malformed,
        },
    }
}

/// The user EXTERNAL logs in as, or why there is none in RabbitMQ's words (the
/// text its log line gives after `EXTERNAL login refused: `).
pub(super) fn external_user(cert: &PeerCert) -> Result<&str, &'static str> {
    match cert {
        PeerCert::CommonName(cn) => Ok(cn),
        PeerCert::Missing => Err("connection peer presented no TLS (x.509) certificate"),
        PeerCert::NoCommonName => Err("no name found"),
        PeerCert::NotOffered => Err("not a TLS-enabled connection"),
    }
}

/// Extract (user, password) from a PLAIN or AMQPLAIN response.
fn credentials(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            if parts.next().is_some() {
                // Trailing data after the password: malformed, refused.
                return None;
            }
            Some((
                String::from_utf8(user.to_vec()).ok()?,
                String::from_utf8(pass.to_vec()).ok()?,
            ))
        }
        "AMQPLAIN" => {
            let mut buf = Vec::with_capacity(response.len() + 4);
            buf.extend_from_slice(&(response.len() as u32).to_be_bytes());
            buf.extend_from_slice(response);
            let (_, t) = parse_field_table(&buf[..]).ok()?;
            let user = t.inner().get("LOGIN").and_then(value_as_str)?;
            let pass = t.inner().get("PASSWORD").and_then(value_as_str)?;
            Some((user, pass))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_trailing_data_is_refused() {
        let none = PeerCert::NotOffered;
        assert_eq!(
            parse("PLAIN", b"\0u\0p", &none),
            Login::Password("u".into(), "p".into())
        );
        assert_eq!(parse("PLAIN", b"\0u\0p\0extra", &none), Login::Malformed);
    }

    #[test]
    fn external_only_where_peers_are_verified() {
        let none = PeerCert::NotOffered;
        assert_eq!(offered(&none), "PLAIN AMQPLAIN");
        assert_eq!(parse("EXTERNAL", b"", &none), Login::NotOffered);
        let cert = PeerCert::CommonName("alice".into());
        assert!(offered(&cert).split(' ').any(|m| m == "EXTERNAL"));
        assert_eq!(parse("EXTERNAL", b"", &cert), Login::External);
        assert_eq!(external_user(&cert), Ok("alice"));
        assert!(external_user(&PeerCert::Missing)
            .unwrap_err()
            .contains("presented no TLS (x.509) certificate"));
    }
}
