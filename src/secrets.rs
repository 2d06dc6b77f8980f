//! Camera credentials at rest: AES-256-GCM with a key kept outside the
//! database — a key file created on first start (mode 0600) in the data
//! directory, or `CAMFLEET_SECRET_KEY` (base64 of 32 bytes). Sealed values are
//! `key id (1) ‖ nonce (12) ‖ ciphertext+tag`, so keys can be rotated later.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng;

use crate::error::{Error, ErrorKind};

pub const KEY_ENV: &str = "CAMFLEET_SECRET_KEY";
pub const KEY_FILE: &str = "secret.key";
const HEADER: &str = "camfleet-secret-key v1";

pub struct SecretBox {
    key_id: u8,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox(key {})", self.key_id)
    }
}

impl SecretBox {
    pub fn from_key(key_id: u8, key: &[u8; 32]) -> Self {
        Self {
            key_id,
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// The key from the environment if set, else the key file in `data_dir`
    /// (created, 0600, when missing).
    pub fn load_or_create(data_dir: &Path) -> Result<Self, Error> {
        if let Ok(v) = std::env::var(KEY_ENV) {
            let key = decode_key(v.trim())
                .map_err(|m| Error::new(ErrorKind::InvalidArgument, format!("{KEY_ENV}: {m}")))?;
            return Ok(Self::from_key(1, &key));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse_file(&text)
                .map_err(|m| Error::new(ErrorKind::Internal, format!("{}: {m}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create_file(&path),
            Err(e) => Err(Error::with_source(
                ErrorKind::Internal,
                format!("reading {}", path.display()),
                e,
            )),
        }
    }

    fn parse_file(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err("not a camfleet key file".into());
        }
        let line = lines.next().ok_or("no key line")?;
        let (id, key) = line.split_once(':').ok_or("malformed key line")?;
        let id: u8 = id.trim().parse().map_err(|_| "bad key id")?;
        Ok(Self::from_key(id, &decode_key(key.trim())?))
    }

    fn create_file(path: &Path) -> Result<Self, Error> {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            Error::with_source(
                ErrorKind::Internal,
                format!("creating {}", path.display()),
                e,
            )
        })?;
        writeln!(f, "{HEADER}\n1:{}", B64.encode(key))
            .and_then(|_| f.sync_all())
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Internal,
                    format!("writing {}", path.display()),
                    e,
                )
            })?;
        tracing::info!(path = %path.display(), "created a new secret key; back it up with the database");
        Ok(Self::from_key(1, &key))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("AES-GCM encryption of a bounded buffer cannot fail");
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(self.key_id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < 1 + 12 + 16 {
            return Err(Error::new(ErrorKind::Internal, "sealed secret too short"));
        }
        if sealed[0] != self.key_id {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "secret sealed with key {} but key {} is loaded",
                    sealed[0], self.key_id
                ),
            ));
        }
        self.cipher
            .decrypt(Nonce::from_slice(&sealed[1..13]), &sealed[13..])
            .map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    "secret does not open with the loaded key (wrong key file?)",
                )
            })
    }

    pub fn seal_str(&self, s: &str) -> Vec<u8> {
        self.seal(s.as_bytes())
    }

    pub fn open_string(&self, sealed: &[u8]) -> Result<String, Error> {
        String::from_utf8(self.open(sealed)?)
            .map_err(|_| Error::new(ErrorKind::Internal, "secret is not UTF-8"))
    }
}

fn decode_key(b64: &str) -> Result<[u8; 32], String> {
    let v = B64
        .decode(b64)
        .map_err(|_| "key is not base64".to_string())?;
    v.try_into().map_err(|_| "key must be 32 bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_wrong_key_rejected() {
        let a = SecretBox::from_key(1, &[7u8; 32]);
        let b = SecretBox::from_key(1, &[8u8; 32]);
        let sealed = a.seal_str("hunter2");
        assert_ne!(&sealed[13..], b"hunter2");
        assert_eq!(a.open_string(&sealed).unwrap(), "hunter2");
        assert!(b.open(&sealed).is_err());
        assert_ne!(a.seal_str("hunter2"), sealed, "fresh nonce each time");
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let a = SecretBox::from_key(1, &[7u8; 32]);
        let mut sealed = a.seal_str("x");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(a.open(&sealed).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("camfleet-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = SecretBox::create_file(&dir.join(KEY_FILE)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
        let b = SecretBox::parse_file(&text).unwrap();
        assert_eq!(b.open_string(&a.seal_str("pw")).unwrap(), "pw");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
