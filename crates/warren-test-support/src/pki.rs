//! Throw-away certificates for the TLS tests, made with rcgen on each run (nothing is
//! committed): a CA ([`Pki`]), broker and client certificates it signs ([`Pair`]),
//! and [`PkiDir`], the same as PEM files for tests that pass paths to a command.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A PEM certificate and its PEM private key.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A throw-away CA.
pub struct Pki {
    /// The CA's own certificate (PEM), what a peer is told to trust.
    pub ca: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A self-signed CA whose subject CN is `name`.
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a self-signed CA");
        Pki {
            ca: issuer.pem(),
            issuer,
        }
    }

    /// A broker certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Pair {
        self.server_for(&["localhost", "127.0.0.1"])
    }

    /// A broker certificate for `names` (the CN is the first).
    pub fn server_for(&self, names: &[&str]) -> Pair {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A broker certificate for localhost that expired in 2021.
    pub fn expired_server(&self) -> Pair {
        self.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate whose subject CN is `cn` (the user of an EXTERNAL login).
    pub fn client(&self, cn: &str) -> Pair {
        self.sign(&[], cn, ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Pair {
        let cn = names.first().copied().unwrap_or("localhost");
        self.sign(names, cn, usage, expired)
    }

    fn sign(
        &self,
        names: &[&str],
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Pair {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a signed certificate");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A directory of PEM files, removed when dropped: `ca.pem`, `server.pem` and
/// `server.key` (localhost, 127.0.0.1), `client.pem` and `client.key` (CN `guest`),
/// and `other-ca.pem`, a CA that signed none of them.
pub struct PkiDir(PathBuf);

impl PkiDir {
    /// Makes the files under the system's temporary directory, in a folder of its own
    /// (named by `name`, this process and a count, so tests running at once never
    /// share one: each removes its folder when it ends).
    pub fn new(name: &str) -> PkiDir {
        let dir = std::env::temp_dir().join(crate::unique(name));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let ca = Pki::new("warren test CA");
        let server = ca.server();
        let client = ca.client("guest");
        let files = [
            ("ca.pem", ca.ca.clone()),
            ("other-ca.pem", Pki::new("some other CA").ca),
            ("server.pem", server.cert),
            ("server.key", server.key),
            ("client.pem", client.cert),
            ("client.key", client.key),
        ];
        for (file, pem) in files {
            std::fs::write(dir.join(file), pem).expect("a PEM file written");
        }
        PkiDir(dir)
    }

    /// The path of one of the files, as a string for a command line.
    pub fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for PkiDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
