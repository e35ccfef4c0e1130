//! The local hub's certificates: a CA and a server certificate for localhost and
//! 127.0.0.1, created in the data dir on first start and reused afterwards, so a
//! client that trusts `ca.pem` once keeps trusting the hub across restarts.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";
const SERVER_CERT_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot create the hub's certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "the certificate file {path} is unreadable ({reason}); delete the hub's *.pem files to have them created again"
    )]
    BadPem { path: PathBuf, reason: String },
    #[error("the hub's certificate and key do not match: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The PEM files of the hub's certificate chain, as found or created in the data dir.
pub struct HubCertificates {
    pub ca_path: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl HubCertificates {
    /// Loads the certificates from `dir`, creating them if any file is missing. A server
    /// certificate that does not cover every name (the host name changed) or does not match
    /// its key is issued again by the same CA, so clients that trust `ca.pem` keep working.
    pub fn load_or_create(dir: &Path, extra_names: &[String]) -> Result<Self, TlsError> {
        let certs = HubCertificates {
            ca_path: dir.join(CA_FILE),
            server_cert: dir.join(SERVER_CERT_FILE),
            server_key: dir.join(SERVER_KEY_FILE),
        };
        let all_present = [
            &certs.ca_path,
            &dir.join(CA_KEY_FILE),
            &certs.server_cert,
            &certs.server_key,
        ]
        .iter()
        .all(|p| p.exists());
        let names = server_names(extra_names);
        if !all_present {
            create(dir, &names)?;
        } else if !certs.serves(&names) {
            let ca_key_path = dir.join(CA_KEY_FILE);
            let ca_key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(|e| TlsError::BadPem {
                path: ca_key_path,
                reason: e.to_string(),
            })?;
            issue_server(dir, &names, &Issuer::new(ca_params()?, &ca_key))?;
        }
        Ok(certs)
    }

    /// Whether the server certificate matches its key and verifies, under the hub's CA,
    /// for every name a client may use.
    fn serves(&self, names: &[String]) -> bool {
        crate::install_crypto_provider();
        let Ok(chain) = CertificateDer::pem_file_iter(&self.server_cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        else {
            return false;
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&self.ca_path)
            .into_iter()
            .flatten()
        {
            let Ok(ca) = ca else { return false };
            if roots.add(ca).is_err() {
                return false;
            }
        }
        let Ok(verifier) = WebPkiServerVerifier::builder(Arc::new(roots)).build() else {
            return false;
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        let now = UnixTime::now();
        self.server_config(&[]).is_ok()
            && names
                .iter()
                // A name no client can ask for (not a DNS name or IP) cannot be checked.
                .filter_map(|n| ServerName::try_from(n.as_str()).ok())
                .all(|name| {
                    verifier
                        .verify_server_cert(leaf, intermediates, &name, &[], now)
                        .is_ok()
                })
    }

    /// A rustls server config for the hub's listeners.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
        self.config(alpn, false)
    }

    /// A server config that asks clients for a certificate and accepts any, or none: the
    /// MQTT and HTTPS listeners, where X.509 devices (MQTT over TLS or over WebSockets)
    /// are then checked at CONNECT (`hub::x509`).
    pub fn server_config_with_client_certs(
        &self,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        self.config(alpn, true)
    }

    fn config(&self, alpn: &[&[u8]], client_certs: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = CertificateDer::pem_file_iter(&self.server_cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad_pem(&self.server_cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&self.server_key)
            .map_err(|e| bad_pem(&self.server_key, e))?;
        let builder = ServerConfig::builder();
        let builder = if client_certs {
            let provider = builder.crypto_provider().clone();
            builder.with_client_cert_verifier(
                crate::x509::tls_client_auth::AnyClientCertificate::new(&provider),
            )
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The CA certificate in PEM form, for clients that must trust the hub.
    pub fn ca_pem(&self) -> Result<String, TlsError> {
        read(&self.ca_path)
    }
}

fn bad_pem(path: &Path, e: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::BadPem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// The server certificate's names: loopback always, plus the hub's host name.
fn server_names(extra_names: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for n in extra_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

/// The CA's parameters. The same on every call, so a server certificate issued later names
/// the CA exactly as the one `ca.pem` holds.
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, "hubtui local IoT Hub CA");
    ca_dn.push(DnType::OrganizationName, "hubtui");
    ca_params.distinguished_name = ca_dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    Ok(ca_params)
}

fn create(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    // Keys first, CA last: `load_or_create` treats a missing file as "create all",
    // so a crash half-way leaves a state that is simply redone.
    write_private(&dir.join(CA_KEY_FILE), &ca_key.serialize_pem())?;
    issue_server(dir, names, &Issuer::new(ca_params, &ca_key))?;
    write_file(&dir.join(CA_FILE), &ca_cert.pem())?;
    Ok(())
}

/// Writes a new server key and certificate for `names`, signed by `issuer`. Key first: a
/// crash between the two leaves a pair that does not match, which the next start reissues.
fn issue_server(
    dir: &Path,
    names: &[String],
    issuer: &Issuer<'_, &KeyPair>,
) -> Result<(), TlsError> {
    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    server_params.distinguished_name = dn;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    server_params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let server_cert = server_params.signed_by(&server_key, issuer)?;
    write_private(&dir.join(SERVER_KEY_FILE), &server_key.serialize_pem())?;
    write_file(&dir.join(SERVER_CERT_FILE), &server_cert.pem())?;
    Ok(())
}

fn write_file(path: &Path, contents: &str) -> Result<(), TlsError> {
    crate::fsutil::write_atomic(path, contents.as_bytes(), false).map_err(|source| TlsError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    crate::fsutil::write_atomic(path, contents.as_bytes(), true).map_err(|source| TlsError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let certs = HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        let first = certs.ca_pem().unwrap();
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(first, again.ca_pem().unwrap());
        crate::install_crypto_provider();
        again.server_config(&[]).unwrap();
    }

    #[test]
    fn a_new_host_name_reissues_the_server_certificate_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["myhub.local".to_string()];
        let first = HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        let ca = first.ca_pem().unwrap();
        assert!(!first.serves(&server_names(&names)));

        let again = HubCertificates::load_or_create(dir.path(), &names).unwrap();
        assert_eq!(again.ca_pem().unwrap(), ca, "the CA must stay");
        assert!(again.serves(&server_names(&names)));
        let issued = std::fs::read_to_string(&again.server_cert).unwrap();

        // Names already covered (loopback is always) leave the certificate alone.
        HubCertificates::load_or_create(dir.path(), &names).unwrap();
        HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&again.server_cert).unwrap(), issued);
    }

    #[test]
    fn server_certificate_verifies_against_ca_for_localhost() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&certs.ca_path).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let chain: Vec<_> = CertificateDer::pem_file_iter(&certs.server_cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        for name in ["localhost", "127.0.0.1"] {
            let server_name = rustls_pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(
                    &chain[0],
                    &[],
                    &server_name,
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap();
        }
        let other = rustls_pki_types::ServerName::try_from("example.com").unwrap();
        assert!(
            verifier
                .verify_server_cert(
                    &chain[0],
                    &[],
                    &other,
                    &[],
                    rustls_pki_types::UnixTime::now()
                )
                .is_err()
        );
    }
}
