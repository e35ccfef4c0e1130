//! Certificates for the X.509 tests, made with rcgen: self-signed device certificates,
//! CAs (root and intermediate) and the certificates they issue, with their thumbprints.

use std::path::Path;

use hubtui::client::device::ClientCertificate;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use sha1::Digest as _;

/// A certificate with its key, and the chain its holder presents (leaf first).
pub struct Issued {
    pub key: KeyPair,
    pub pem: String,
    pub chain: Vec<CertificateDer<'static>>,
}

impl Issued {
    pub fn leaf_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    pub fn sha1(&self) -> String {
        hex(&sha1::Sha1::digest(self.leaf_der()))
    }

    pub fn sha256(&self) -> String {
        hex(&<sha2::Sha256 as sha2::Digest>::digest(self.leaf_der()))
    }

    /// The certificate (chain) and key as the device client reads them.
    pub fn identity(&self) -> ClientCertificate {
        let pem: String = self.chain.iter().map(|c| pem_of(c.as_ref())).collect();
        ClientCertificate::from_pem(
            pem.as_bytes(),
            Path::new("device.pem"),
            self.key.serialize_pem().as_bytes(),
            Path::new("device-key.pem"),
            None,
        )
        .unwrap()
    }
}

pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A device (client) certificate for `cn`, valid from the start of `from_year` to the
/// start of `to_year`.
pub fn leaf_params_between(cn: &str, from_year: i32, to_year: i32) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = rcgen::date_time_ymd(from_year, 1, 1);
    p.not_after = rcgen::date_time_ymd(to_year, 1, 1);
    p
}

/// A device certificate for `cn`, valid now.
pub fn leaf_params(cn: &str) -> CertificateParams {
    leaf_params_between(cn, 2024, 2049)
}

pub fn self_signed(cn: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(cn).self_signed(&key).unwrap();
    Issued {
        pem: cert.pem(),
        chain: vec![cert.der().clone()],
        key,
    }
}

/// A CA: its parameters and key (to issue with), its certificate, and the certificates a
/// device it issues for presents after its own (the intermediates; never the root).
pub struct Ca {
    pub params: CertificateParams,
    pub issued: Issued,
    pub presented: Vec<CertificateDer<'static>>,
}

pub fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2049, 1, 1);
    p
}

pub fn root_ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        params,
        issued: Issued {
            pem: cert.pem(),
            chain: vec![cert.der().clone()],
            key,
        },
        presented: Vec::new(),
    }
}

impl Ca {
    /// Issues `params` under this CA, with the chain its holder presents.
    pub fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::new(self.params.clone(), &self.issued.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.presented.iter().cloned());
        Issued {
            pem: cert.pem(),
            chain,
            key,
        }
    }

    pub fn intermediate(&self, cn: &str) -> Ca {
        let params = ca_params(cn);
        let issued = self.issue(params.clone());
        Ca {
            params,
            presented: issued.chain.clone(),
            issued,
        }
    }

    /// A device certificate for `cn`, valid now.
    pub fn device(&self, cn: &str) -> Issued {
        self.issue(leaf_params(cn))
    }
}

/// `key_pem` (PKCS#8) encrypted with `passphrase` as `openssl genpkey -aes256` writes it:
/// PBES2 with PBKDF2-SHA256 and AES-256-CBC.
pub fn encrypt_key(key_pem: &str, passphrase: &str) -> String {
    let (_, der) = pkcs8::Document::from_pem(key_pem).unwrap();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16]).unwrap();
    let encrypted = info.encrypt_with_params(params, passphrase).unwrap();
    encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// A TLS client configuration that trusts the hub's CA and presents `issued`'s chain, if
/// given, as a device with a certificate does.
pub fn client_tls_with(ca_pem: &str, issued: Option<&Issued>) -> rustls::ClientConfig {
    hubtui::hub::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match issued {
        None => builder.with_no_client_auth(),
        Some(i) => builder
            .with_client_auth_cert(
                i.chain.clone(),
                rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
                    i.key.serialize_der(),
                )),
            )
            .unwrap(),
    }
}
