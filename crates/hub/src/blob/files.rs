//! Blob bodies on disk: a body streams into a temporary file (hashed as it goes),
//! is synced, then renamed into the data directory under a fresh name. Nothing
//! here holds a body in memory beyond one frame.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use axum::body::Body;
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::error::StorageError;

/// A file that is removed when dropped unless kept: a body abandoned half-way (a
/// client gone, a limit hit, a cancelled request) leaves nothing behind.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            remove_quietly(&p);
        }
    }
}

/// A body now in the data directory.
pub struct Written {
    /// File name in the data directory.
    pub file: String,
    pub size: u64,
    pub md5: [u8; 16],
}

fn fresh_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Streams `body` into a new data file; at most `max` bytes (413 beyond).
pub async fn write_body(
    body: Body,
    tmp_dir: &Path,
    data_dir: &Path,
    max: u64,
) -> Result<Written, StorageError> {
    let name = fresh_name();
    let tmp = TempFile(Some(tmp_dir.join(&name)));
    let path = tmp.0.clone().unwrap_or_default();
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(StorageError::internal)?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable_body)?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        md5.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(StorageError::internal)?;
    }
    file.sync_all().await.map_err(StorageError::internal)?;
    drop(file);
    let data = data_dir.to_path_buf();
    let from = tmp.keep();
    let to = data.join(&name);
    tokio::task::spawn_blocking(move || publish(&from, &to, &data))
        .await
        .map_err(StorageError::internal)?
        .map_err(StorageError::internal)?;
    Ok(Written {
        file: name,
        size,
        md5: md5.finalize().into(),
    })
}

/// A request body that broke off or could not be read.
pub fn unreadable_body(e: impl std::fmt::Display) -> StorageError {
    StorageError::new(
        400,
        "InvalidInput",
        format!("The request body could not be read: {e}."),
    )
}

pub fn too_large(max: u64) -> StorageError {
    StorageError::new(
        413,
        "RequestBodyTooLarge",
        format!(
            "The request body is too large and exceeds the maximum permissible limit ({max} bytes)."
        ),
    )
}

/// Renames a synced file into place and syncs the directory, removing it on failure.
fn publish(from: &Path, to: &Path, dir: &Path) -> std::io::Result<()> {
    if let Err(e) = std::fs::rename(from, to) {
        remove_quietly(from);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
}

/// Concatenates data files into a new one (blocking): the committed body of a block list.
pub fn concatenate(parts: &[String], tmp_dir: &Path, data_dir: &Path) -> std::io::Result<Written> {
    let name = fresh_name();
    let tmp = TempFile(Some(tmp_dir.join(&name)));
    let path = tmp.0.clone().unwrap_or_default();
    let mut out = std::fs::File::create(&path)?;
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for p in parts {
        let mut f = std::fs::File::open(data_dir.join(p))?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
    }
    out.sync_all()?;
    drop(out);
    let from = tmp.keep();
    publish(&from, &data_dir.join(&name), data_dir)?;
    Ok(Written {
        file: name,
        size,
        md5: [0; 16],
    })
}

pub fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a blob file");
    }
}

/// Removes every file in `dir`.
pub fn clear_dir(dir: &Path) {
    sweep(dir, &HashSet::new());
}

/// Removes the files in `dir` whose names are not in `keep`.
pub fn sweep(dir: &Path, keep: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            remove_quietly(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_lands_whole_with_its_md5_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, data) = (dir.path().join("t"), dir.path().join("d"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let w = write_body(Body::from("hello"), &tmp, &data, 5)
            .await
            .unwrap();
        assert_eq!(w.size, 5);
        assert_eq!(w.md5, <[u8; 16]>::from(Md5::digest(b"hello")));
        assert_eq!(std::fs::read(data.join(&w.file)).unwrap(), b"hello");
        let e = write_body(Body::from("toolong"), &tmp, &data, 5)
            .await
            .err()
            .unwrap();
        assert_eq!(e.code, "RequestBodyTooLarge");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
        let w2 = write_body(Body::from(" world"), &tmp, &data, 99)
            .await
            .unwrap();
        let joined = concatenate(&[w.file.clone(), w2.file.clone()], &tmp, &data).unwrap();
        assert_eq!(
            std::fs::read(data.join(&joined.file)).unwrap(),
            b"hello world"
        );
        sweep(&data, &[joined.file.clone()].into_iter().collect());
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
    }
}
