//! Who the client is and where it goes: the password or certificate (EXTERNAL)
//! login (mechanisms are read in `mechanism.rs`), the loopback-only users, the password check, and
//! the vhost `connection.open` names with the user's permissions on it.

use super::mechanism::external_user;
use crate::access::grant::Grant;
use crate::error::AmqpError;
use crate::shared::Shared;
use crate::tls::PeerCert;
use crate::vhost::VHost;
use std::net::SocketAddr;
use std::sync::Arc;

/// The user name if `password` is theirs and they may log in from this peer (and
/// this peer's address has not failed too often lately, see
/// [`crate::login_limit`]).
pub(super) fn login(
    shared: &Shared,
    (id, peer): (u64, SocketAddr),
    user: &str,
    password: &str,
) -> Option<String> {
    let cfg = &shared.config;
    if cfg.loopback_users.iter().any(|u| u == user) && !is_loopback(peer) {
        tracing::warn!(conn = id, user, peer = %peer, "user can only connect via localhost");
        return None;
    }
    let now = std::time::Instant::now();
    if shared.login_limit.blocked(peer.ip(), now) {
        tracing::warn!(conn = id, user, peer = %peer, "login refused: too many failed logins from this address");
        return None;
    }
    let access = shared.access.read().ok()?;
    let ok = access.authenticate(user, password).is_some();
    if !ok {
        shared.login_limit.failed(peer.ip(), now);
        tracing::warn!(conn = id, user, peer = %peer, "login refused: bad user name or password");
    }
    ok.then(|| user.to_owned())
}

/// The vhost `connection.open` names and the user's grant on it, or RabbitMQ's
/// 530 refusals: `vhost X not found` for a vhost that does not exist, `access to
/// vhost 'X' refused for user 'U'` for one the user has no permissions on.
pub(super) fn open_vhost(
    shared: &Shared,
    user: &str,
    vhost: &str,
) -> Result<(Grant, Arc<VHost>), AmqpError> {
    let refused = || {
        AmqpError::not_allowed(format!(
            "access to vhost '{vhost}' refused for user '{user}'"
        ))
    };
    let access = shared.access.read().map_err(|_| refused())?;
    let served = shared.vhosts.get(vhost).filter(|_| access.has_vhost(vhost));
    let Some(served) = served else {
        return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")));
    };
    let perms = access.permissions(user, vhost).ok_or_else(refused)?;
    Ok((Grant::new(user, vhost, perms.clone()), served))
}

/// EXTERNAL: the certificate's user if the store has them and they may log in
/// from this peer (RabbitMQ checks no password: the TLS handshake verified the
/// certificate).
pub(super) fn login_external(
    shared: &Shared,
    (id, peer): (u64, SocketAddr),
    cert: &PeerCert,
) -> Option<String> {
    let user = match external_user(cert) {
        Ok(user) => user,
        Err(reason) => {
            tracing::warn!(conn = id, peer = %peer, "EXTERNAL login refused: {reason}");
            return None;
        }
    };
    if shared.config.loopback_users.iter().any(|u| u == user) && !is_loopback(peer) {
        tracing::warn!(conn = id, user, peer = %peer, "user can only connect via localhost");
        return None;
    }
    let access = shared.access.read().ok()?;
    if access.user(user).is_none() {
        tracing::warn!(conn = id, peer = %peer, "EXTERNAL login refused: user '{user}' - invalid credentials");
        return None;
    }
    Some(user.to_owned())
}

/// Whether a peer address is loopback (an IPv4-mapped IPv6 one included).
pub(crate) fn is_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(a) => a.is_loopback(),
        std::net::IpAddr::V6(a) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rule() {
        assert!(is_loopback("127.0.0.1:5672".parse().unwrap()));
        assert!(is_loopback("[::1]:5672".parse().unwrap()));
        assert!(is_loopback("[::ffff:127.0.0.1]:5672".parse().unwrap()));
        assert!(!is_loopback("192.168.1.20:5672".parse().unwrap()));
        assert!(!is_loopback("[2001:db8::1]:5672".parse().unwrap()));
    }
}
