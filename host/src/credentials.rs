//! The client certificate the host holds for the component: it signs OAuth
//! 2.0 client assertions (RFC 7523) on request, so the private key never
//! enters the sandbox. Configured with `client_certificate_file` (PEM, the
//! certificate uploaded to the app registration) and
//! `client_private_key_file` (PEM, PKCS#8 or PKCS#1 RSA; it may also sit in
//! the certificate file).

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PSS_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// An RSA key and the thumbprint of its certificate.
pub struct ClientCertificate {
    key: RsaKeyPair,
    /// `x5t#S256`: base64url of the certificate's SHA-256.
    thumbprint: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClientCertificate {
    /// Reads the certificate and the key. Errors name the file and say what
    /// it should hold; they never quote the key.
    pub fn load(certificate_file: &Path, key_file: Option<&Path>) -> Result<ClientCertificate> {
        let pem =
            std::fs::read(certificate_file).with_context(|| format!("reading `client_certificate_file` {}", certificate_file.display()))?;
        let certificate = CertificateDer::from_pem_slice(&pem).map_err(|_| {
            anyhow!(
                "`client_certificate_file` {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                certificate_file.display()
            )
        })?;
        let (key_pem, key_name) = match key_file {
            Some(path) => (
                std::fs::read(path).with_context(|| format!("reading `client_private_key_file` {}", path.display()))?,
                path,
            ),
            None => (pem, certificate_file),
        };
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
            anyhow!(
                "{} holds no PEM private key; set `client_private_key_file` to the key of the certificate \
                 (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
                key_name.display()
            )
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => bail!(
                "the private key in {} is not an RSA key; Entra ID client certificates use RSA (2048 bits or more)",
                key_name.display()
            ),
        }
        .map_err(|e| anyhow!("the private key in {} cannot be used: {e}", key_name.display()))?;
        // The key must belong to the certificate, or Entra ID refuses every
        // assertion: the certificate carries the key's public half verbatim.
        if !contains(certificate.as_ref(), key.public().as_ref()) {
            bail!(
                "the private key in {} does not belong to the certificate in {}",
                key_name.display(),
                certificate_file.display()
            );
        }
        Ok(ClientCertificate {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, certificate.as_ref())),
            rng: SystemRandom::new(),
        })
    }

    /// The `x5t#S256` header value.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Signs `claims` (a JSON object) as a PS256 JWT with a fresh random
    /// `jti` and the certificate's `x5t#S256`.
    pub fn sign(&self, claims: &str) -> Result<String, String> {
        let mut claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(claims).map_err(|_| "the claims are not a JSON object".to_string())?;
        let mut id = [0u8; 16];
        self.rng.fill(&mut id).map_err(|_| "no randomness for the jti".to_string())?;
        claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(id).into());
        let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::Value::Object(claims).to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PSS_SHA256, &self.rng, signing_input.as_bytes(), &mut signature)
            .map_err(|_| "signing failed".to_string())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
