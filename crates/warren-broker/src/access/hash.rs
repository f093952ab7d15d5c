//! Password hashes in RabbitMQ's `rabbit_password_hashing_sha256` format:
//! `base64(salt ++ sha256(salt ++ utf8(password)))` with a 4-byte salt, so hashes
//! move between Warren and RabbitMQ (`rabbitmqctl hash_password`, definitions).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, Hasher};

/// The `hashing_algorithm` name RabbitMQ writes in definitions for this format.
pub const SHA256_ALGORITHM: &str = "rabbit_password_hashing_sha256";

/// Hash `password` with a fresh random 4-byte salt.
pub fn hash_password(password: &str) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(password.as_bytes());
    let salt = (h.finish() as u32).to_be_bytes();
    hash_with_salt(salt, password)
}

fn hash_with_salt(salt: [u8; 4], password: &str) -> String {
    let mut d = Sha256::new();
    d.update(salt);
    d.update(password.as_bytes());
    let mut raw = salt.to_vec();
    raw.extend_from_slice(&d.finalize());
    STANDARD.encode(raw)
}

/// Whether `password` matches `hash` (a malformed hash matches nothing).
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(raw) = STANDARD.decode(hash.trim()) else {
        return false;
    };
    if raw.len() != 4 + 32 {
        return false;
    }
    let salt = [raw[0], raw[1], raw[2], raw[3]];
    let mut d = Sha256::new();
    d.update(salt);
    d.update(password.as_bytes());
    // Compare without an early exit on the first differing byte.
    d.finalize()
        .iter()
        .zip(&raw[4..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_wrong_password() {
        let h = hash_password("s3cret");
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "s3cre"));
        assert!(!verify_password("not base64!", "s3cret"));
    }

    #[test]
    fn known_salt_gives_rabbitmq_layout() {
        let h = hash_with_salt([1, 2, 3, 4], "guest");
        let raw = STANDARD.decode(&h).unwrap();
        assert_eq!(&raw[..4], &[1, 2, 3, 4]);
        assert_eq!(raw.len(), 36);
        assert!(verify_password(&h, "guest"));
    }
}
