//! The storage tier: one `object_store` for a local directory (the
//! default, under the data directory) or an S3-compatible bucket
//! (path-style, for MinIO, SeaweedFS, AWS): recordings, firmware images,
//! configuration and database backups.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, ErrorKind, Result};

/// A file stored by [`Storage::adopt_file`].
#[derive(Debug, Clone)]
pub struct Adopted {
    pub bytes: u64,
    pub sha256: String,
    /// Renamed into a local tier (gone from where it was).
    pub moved: bool,
}

pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// For a local tier: its directory (free space is measured there).
    local_dir: Option<std::path::PathBuf>,
    /// Where it is, for pages and logs (no secrets).
    pub description: String,
}

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, format!("storage: {what}: {e}"))
}

impl Storage {
    /// A local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Storage> {
        std::fs::create_dir_all(dir).map_err(|e| err(&dir.display().to_string(), e))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| err(&dir.display().to_string(), e))?;
        Ok(Storage {
            store: Arc::new(fs),
            local_dir: Some(dir.to_path_buf()),
            description: format!("local directory {}", dir.display()),
        })
    }

    /// In memory (tests).
    pub fn memory() -> Storage {
        Storage {
            store: Arc::new(object_store::memory::InMemory::new()),
            local_dir: None,
            description: "memory".into(),
        }
    }

    /// `s3://bucket[/prefix]?endpoint=http://host:9000&region=…`. Keys come
    /// from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`. Requests are
    /// path-style; plain HTTP is allowed only to an explicit endpoint.
    pub fn s3(url: &str) -> Result<Storage> {
        Self::s3_with_keys(url, None)
    }

    /// As [`s3`](Self::s3), with these keys instead of the environment's.
    pub fn s3_with_keys(url: &str, keys: Option<(&str, &str)>) -> Result<Storage> {
        let parsed = url::Url::parse(url).map_err(|e| err("URL", e))?;
        if parsed.scheme() != "s3" {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "storage URL: s3://bucket?endpoint=… expected",
            ));
        }
        let bucket = parsed
            .host_str()
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "storage URL: no bucket"))?;
        let q = |k: &str| {
            parsed
                .query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false)
            .with_region(q("region").unwrap_or_else(|| "us-east-1".into()));
        if let Some((key, secret)) = keys {
            b = b.with_access_key_id(key).with_secret_access_key(secret);
        }
        if let Some(ep) = q("endpoint") {
            b = b
                .with_allow_http(ep.starts_with("http://"))
                .with_endpoint(ep);
        }
        let s3 = b.build().map_err(|e| err("S3 configuration", e))?;
        let prefix = parsed.path().trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
        };
        Ok(Storage {
            store,
            local_dir: None,
            description: format!("S3 bucket {bucket}"),
        })
    }

    /// Free bytes on a local tier's filesystem (None for object stores).
    pub fn free_bytes(&self) -> Option<u64> {
        let dir = self.local_dir.as_ref()?;
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a writable
        // statvfs; the call only writes into `st`.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&Key::from(key), PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| err(&format!("writing {key}"), e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let r = self
            .store
            .get(&Key::from(key))
            .await
            .map_err(|e| err(&format!("reading {key}"), e))?;
        r.bytes()
            .await
            .map_err(|e| err(&format!("reading {key}"), e))
    }

    /// Bytes `[start, end)` of an object: only those are read (a ranged
    /// GET on S3, a seek on a local tier).
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&Key::from(key), range)
            .await
            .map_err(|e| err(&format!("reading {key}"), e))
    }

    /// Where a key's object lives on a local tier, when the key maps to a
    /// path unchanged (letters, digits, `._-/`; no hidden or empty parts).
    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        let dir = self.local_dir.as_ref()?;
        let plain = key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-/".contains(&c))
            && key
                .split('/')
                .all(|part| !part.is_empty() && !part.starts_with('.'));
        plain.then(|| dir.join(key))
    }

    /// Store a finished file from the spool. A local tier on the spool's
    /// filesystem takes it by rename: hashed once, never copied (the second
    /// write of every recorded byte), its directory fsynced; the file is
    /// then gone from `path` (`moved`). Anything else is [`put_file`](Self::put_file).
    pub async fn adopt_file(&self, key: &str, path: &Path) -> Result<Adopted> {
        if let Some(dest) = self.local_path(key) {
            let src = path.to_path_buf();
            let r =
                tokio::task::spawn_blocking(move || -> std::io::Result<Option<(u64, String)>> {
                    let (n, sha256) = sha256_file(&src)?;
                    let parent = dest.parent().unwrap_or(Path::new("."));
                    std::fs::create_dir_all(parent)?;
                    match std::fs::rename(&src, &dest) {
                        Ok(()) => {}
                        // Another filesystem: copy instead.
                        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Ok(None),
                        Err(e) => return Err(e),
                    }
                    std::fs::File::open(parent)?.sync_all()?;
                    Ok(Some((n, sha256)))
                })
                .await
                .map_err(|e| err(&format!("writing {key}"), e))?
                .map_err(|e| err(&format!("writing {key}"), e))?;
            if let Some((bytes, sha256)) = r {
                return Ok(Adopted {
                    bytes,
                    sha256,
                    moved: true,
                });
            }
        }
        let (bytes, sha256) = self.put_file(key, path).await?;
        Ok(Adopted {
            bytes,
            sha256,
            moved: false,
        })
    }

    /// Undo an [`adopt_file`](Self::adopt_file) that moved the file (its
    /// ledger entry could not be written): back to `path`.
    pub fn unadopt_file(&self, key: &str, path: &Path) -> Result<()> {
        let Some(src) = self.local_path(key) else {
            return Ok(());
        };
        std::fs::rename(&src, path).map_err(|e| err(&format!("moving {key} back"), e))
    }

    /// Store a file without holding it in memory: read in 1 MiB pieces,
    /// hashed on the way, sent as a multipart upload of 5 MiB parts (the
    /// smallest S3 allows) when it is larger than one part. Returns its
    /// size and SHA-256 (hex).
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(u64, String)> {
        use sha2::Digest;
        use tokio::io::AsyncReadExt;
        const PART: usize = 5 * 1024 * 1024;
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| err(&format!("reading {}", path.display()), e))?;
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        let mut hasher = sha2::Sha256::new();
        if len <= PART as u64 {
            let mut data = Vec::with_capacity(len as usize);
            f.read_to_end(&mut data)
                .await
                .map_err(|e| err(&format!("reading {}", path.display()), e))?;
            hasher.update(&data);
            let n = data.len() as u64;
            self.put(key, Bytes::from(data)).await?;
            return Ok((n, hex(&hasher.finalize())));
        }
        let upload = self
            .store
            .put_multipart(&Key::from(key))
            .await
            .map_err(|e| err(&format!("writing {key}"), e))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut total = 0u64;
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(err(&format!("reading {}", path.display()), e));
                }
            };
            hasher.update(&buf[..n]);
            total += n as u64;
            if let Err(e) = w.wait_for_capacity(2).await {
                return Err(err(&format!("writing {key}"), e));
            }
            w.write(&buf[..n]);
        }
        w.finish()
            .await
            .map_err(|e| err(&format!("writing {key}"), e))?;
        Ok((total, hex(&hasher.finalize())))
    }

    /// Every object under `prefix`: (key, size). Capped at `limit`.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, u64)>> {
        use futures::StreamExt;
        let p = Key::from(prefix);
        let mut stream = self.store.list(Some(&p));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let m = item.map_err(|e| err(&format!("listing {prefix}"), e))?;
            out.push((m.location.to_string(), m.size));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store
            .delete(&Key::from(key))
            .await
            .map_err(|e| err(&format!("deleting {key}"), e))
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of some bytes, as lowercase hex (checksums in the ledger and
/// the firmware library).
/// A file's size and SHA-256 (hex), read in 1 MiB pieces (blocking: call
/// it from the blocking pool).
pub fn sha256_file(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok((n, hex(&h.finalize())));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_round_trip_and_clear_errors() {
        let dir = std::env::temp_dir().join(format!("camfleet-storage-{}", uuid::Uuid::new_v4()));
        let s = Storage::local(&dir).unwrap();
        s.put("firmware/ab/cd.bin", Bytes::from_static(b"image"))
            .await
            .unwrap();
        assert_eq!(&s.get("firmware/ab/cd.bin").await.unwrap()[..], b"image");
        s.delete("firmware/ab/cd.bin").await.unwrap();
        let e = s.get("firmware/ab/cd.bin").await.unwrap_err();
        assert!(e.to_string().contains("reading firmware/ab/cd.bin"), "{e}");
        assert!(Storage::s3("http://bucket").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_spool_file_enters_a_local_tier_by_rename_and_can_go_back() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("camfleet-adopt-{}", uuid::Uuid::new_v4()));
        let s = Storage::local(&dir.join("tier")).unwrap();
        std::fs::create_dir_all(dir.join("spool")).unwrap();
        let spool = dir.join("spool/seg.mp4");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        std::fs::write(&spool, &data).unwrap();
        let inode = std::fs::metadata(&spool).unwrap().ino();
        let key = "recordings/7/Profile_1/2026/12/06/1.mp4";
        let a = s.adopt_file(key, &spool).await.unwrap();
        assert!(a.moved);
        assert_eq!(
            (a.bytes, a.sha256.as_str()),
            (data.len() as u64, sha256_hex(&data).as_str())
        );
        assert!(!spool.exists());
        let stored = dir.join("tier").join(key);
        assert_eq!(
            std::fs::metadata(&stored).unwrap().ino(),
            inode,
            "renamed, not copied"
        );
        assert_eq!(s.get_range(key, 10..20).await.unwrap()[..], data[10..20]);
        s.unadopt_file(key, &spool).unwrap();
        assert!(spool.exists() && !stored.exists());
        // A key that does not map to a plain path is copied.
        let odd = "recordings/7/Profile 1/x.mp4";
        let b = s.adopt_file(odd, &spool).await.unwrap();
        assert!(!b.moved && spool.exists());
        assert_eq!(s.get(odd).await.unwrap().len(), data.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
