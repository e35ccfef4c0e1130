//! A device's X.509 identity: its certificate (with the chain up to its CA, if given) and
//! private key, read from PEM files and checked to belong together before any connection
//! is made, so a wrong file is one clear sentence rather than a failed handshake.

use std::io::Read;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest certificate (chain) file read: a chain of 8 large certificates, in PEM.
const MAX_CERT_FILE_BYTES: u64 = 256 * 1024;
/// Largest key file read: an RSA 16384-bit key in PEM is about 12 KB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// Most certificates in a chain file.
const MAX_CHAIN_LENGTH: usize = 8;

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ClientCertificateError {
    #[error("cannot read the {what} file {path}: {reason}; check the path")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} file {path} is larger than {max} bytes; is it the right file?")]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        max: u64,
    },
    #[error(
        "the certificate file {0} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the device certificate in PEM form"
    )]
    NoCertificate(PathBuf),
    #[error(
        "the certificate file {path} is not valid PEM ({reason}); give the device certificate in PEM form"
    )]
    BadCertificate { path: PathBuf, reason: String },
    #[error(
        "the certificate file {0} holds more than {MAX_CHAIN_LENGTH} certificates; give the device certificate and its chain only"
    )]
    ChainTooLong(PathBuf),
    #[error(
        "the key file {0} is encrypted; give its passphrase (HUBTUI_X509_KEY_PASSPHRASE or --x509-key-passphrase)"
    )]
    PassphraseNeeded(PathBuf),
    #[error("cannot decrypt the key file {0} with the passphrase given; check the passphrase")]
    WrongPassphrase(PathBuf),
    #[error(
        "the key file {0} is encrypted in OpenSSL's legacy form, which is not read; convert it to PKCS#8 (openssl pkcs8 -topk8 -in KEY -out KEY.p8.pem)"
    )]
    LegacyEncryptedKey(PathBuf),

    #[error(
        "the key file {path} holds no usable private key ({reason}); give the certificate's private key in PEM form (PKCS#8, PKCS#1 or SEC1)"
    )]
    BadKey { path: PathBuf, reason: String },
    #[error(
        "the private key in {key} does not belong to the certificate in {cert}; give the key the certificate was made for"
    )]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// A device certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ClientCertificate {
    fn clone(&self) -> Self {
        ClientCertificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl PartialEq for ClientCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.key.secret_der() == other.key.secret_der()
    }
}

fn read_bounded(
    what: &'static str,
    path: &Path,
    max: u64,
) -> Result<Vec<u8>, ClientCertificateError> {
    let unreadable = |e: std::io::Error| ClientCertificateError::Unreadable {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max {
        return Err(ClientCertificateError::TooLarge {
            what,
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// The private key of a PEM key file: plain (PKCS#8, PKCS#1, SEC1) or encrypted PKCS#8
/// (PBES2, as `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write it).
fn read_key(
    key_pem: &[u8],
    path: &Path,
    passphrase: Option<&str>,
) -> Result<PrivateKeyDer<'static>, ClientCertificateError> {
    let text = String::from_utf8_lossy(key_pem);
    let path = path.to_path_buf();
    // OpenSSL's traditional encryption: PEM headers on a PKCS#1 or SEC1 key.
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(ClientCertificateError::LegacyEncryptedKey(path));
    }
    let bad_key = |reason: String| ClientCertificateError::BadKey {
        path: path.clone(),
        reason,
    };
    // A passphrase for a plain key is ignored, as OpenSSL does: it may come from the
    // environment for other keys.
    if !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad_key(e.to_string()));
    }
    let Some(passphrase) = passphrase else {
        return Err(ClientCertificateError::PassphraseNeeded(path));
    };
    let (_, der) = pkcs8::Document::from_pem(&text).map_err(|e| bad_key(e.to_string()))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_bytes())
        .map_err(|e| bad_key(e.to_string()))?;
    let plain = encrypted
        .decrypt(passphrase)
        .map_err(|_| ClientCertificateError::WrongPassphrase(path))?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

impl ClientCertificate {
    /// Reads the certificate (and chain) and key PEM files and checks that they match;
    /// `passphrase` decrypts an encrypted PKCS#8 key.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        passphrase: Option<&str>,
    ) -> Result<Self, ClientCertificateError> {
        let cert_pem = read_bounded("certificate", cert, MAX_CERT_FILE_BYTES)?;
        let key_pem = read_bounded("key", key, MAX_KEY_FILE_BYTES)?;
        Self::from_pem(&cert_pem, cert, &key_pem, key, passphrase)
    }

    /// As `from_pem_files`, from PEM text; the paths name the inputs in errors.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
        passphrase: Option<&str>,
    ) -> Result<Self, ClientCertificateError> {
        let mut chain = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(cert_pem) {
            let (kind, der) = section.map_err(|e| ClientCertificateError::BadCertificate {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            })?;
            if kind != SectionKind::Certificate {
                continue;
            }
            if chain.len() == MAX_CHAIN_LENGTH {
                return Err(ClientCertificateError::ChainTooLong(
                    cert_path.to_path_buf(),
                ));
            }
            chain.push(CertificateDer::from(der));
        }
        if chain.is_empty() {
            return Err(ClientCertificateError::NoCertificate(
                cert_path.to_path_buf(),
            ));
        }
        let bad_key = |reason: String| ClientCertificateError::BadKey {
            path: key_path.to_path_buf(),
            reason,
        };
        let key = read_key(key_pem, key_path, passphrase)?;
        let me = ClientCertificate { chain, key };
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        match rustls::sign::CertifiedKey::from_der(me.chain.clone(), me.key.clone_key(), &provider)
        {
            Ok(_) => Ok(me),
            Err(rustls::Error::InconsistentKeys(_)) => Err(ClientCertificateError::Mismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            }),
            Err(e) => Err(bad_key(e.to_string())),
        }
    }

    /// The chain, leaf first, as presented in the TLS handshake.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The leaf certificate's subject common name: the device id (or `{device}/{module}`)
    /// a CA-signed certificate is issued for.
    pub fn common_name(&self) -> Option<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(self.chain.first()?).ok()?;
        let cn = cert.subject().iter_common_name().next()?;
        cn.as_str().ok().map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn pair(cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn load(cert: &str, key: &str) -> Result<ClientCertificate, ClientCertificateError> {
        ClientCertificate::from_pem(
            cert.as_bytes(),
            Path::new("dev.pem"),
            key.as_bytes(),
            Path::new("dev-key.pem"),
            None,
        )
    }

    #[test]
    fn a_matching_pair_loads_and_names_its_device() {
        let (cert, key) = pair("dev-1");
        let c = load(&cert, &key).unwrap();
        assert_eq!(c.chain().len(), 1);
        assert_eq!(c.common_name().as_deref(), Some("dev-1"));
    }

    #[test]
    fn bad_input_is_one_sentence_naming_the_file() {
        let (cert, key) = pair("dev-1");
        let (_, other_key) = pair("dev-2");
        let e = load(&cert, &other_key).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the private key in dev-key.pem does not belong to the certificate in dev.pem; give the key the certificate was made for"
        );
        assert!(matches!(
            load(&key, &key),
            Err(ClientCertificateError::NoCertificate(_))
        ));
        assert!(matches!(
            load(&cert, &cert),
            Err(ClientCertificateError::BadKey { .. })
        ));
        let e =
            ClientCertificate::from_pem_files(Path::new("no-such-dir/c.pem"), Path::new("k"), None)
                .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read the certificate file no-such-dir/c.pem:"),
            "{e}"
        );
    }

    /// `key` encrypted as PKCS#8 PBES2 (PBKDF2-SHA256, AES-256-CBC): OpenSSL's default.
    fn encrypt(key_pem: &str, passphrase: &str) -> String {
        let (_, der) = pkcs8::Document::from_pem(key_pem).unwrap();
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes()).unwrap();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16])
                .unwrap();
        let encrypted = info.encrypt_with_params(params, passphrase).unwrap();
        encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", Default::default())
            .unwrap()
            .to_string()
    }

    fn load_with(
        cert: &str,
        key: &str,
        pass: &str,
    ) -> Result<ClientCertificate, ClientCertificateError> {
        ClientCertificate::from_pem(
            cert.as_bytes(),
            Path::new("dev.pem"),
            key.as_bytes(),
            Path::new("dev-key.pem"),
            Some(pass),
        )
    }

    #[test]
    fn an_encrypted_key_loads_with_its_passphrase() {
        let (cert, key) = pair("dev-1");
        let encrypted = encrypt(&key, "s3cret");
        assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let c = load_with(&cert, &encrypted, "s3cret").unwrap();
        assert_eq!(c, load(&cert, &key).unwrap());
    }

    #[test]
    fn a_missing_or_wrong_passphrase_is_one_sentence() {
        let (cert, key) = pair("dev-1");
        let encrypted = encrypt(&key, "s3cret");
        assert_eq!(
            load(&cert, &encrypted).unwrap_err().to_string(),
            "the key file dev-key.pem is encrypted; give its passphrase (HUBTUI_X509_KEY_PASSPHRASE or --x509-key-passphrase)"
        );
        assert_eq!(
            load_with(&cert, &encrypted, "wrong").unwrap_err(),
            ClientCertificateError::WrongPassphrase("dev-key.pem".into())
        );
        assert_eq!(
            load_with(&cert, &key, "s3cret").unwrap(),
            load(&cert, &key).unwrap()
        );
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            load_with(&cert, legacy, "s3cret").unwrap_err(),
            ClientCertificateError::LegacyEncryptedKey("dev-key.pem".into())
        );
    }
}
