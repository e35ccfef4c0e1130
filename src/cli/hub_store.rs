//! The database of a stopped local hub, opened by the `hubtui hub` subcommands that manage
//! what it holds (enrollments, CA certificates). A running hub holds its database
//! exclusively; then `running_hint` tells the user what to do instead.

use std::path::{Path, PathBuf};

use super::Failure;
use hub::store::{Store, StoreError};

/// Opens (creating if needed) the store of the hub whose data dir is `dir`.
pub fn open(dir: &Path, running_hint: &str) -> Result<(Store, PathBuf), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::runtime(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    let store = Store::open(&dir.join("hub.db")).map_err(|e| match e {
        StoreError::Locked(_) => Failure::runtime(format!(
            "the hub in {} is running and holds its database; {running_hint}",
            dir.display()
        )),
        other => Failure::runtime(other.to_string()),
    })?;
    Ok((store, dir.to_path_buf()))
}
