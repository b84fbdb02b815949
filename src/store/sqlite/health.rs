//! Whether the outbox can keep its promises: its file still the one opened, and writes committing. The
//! webhook answers 503 and readiness fails while either is not so. Deliveries whose record could not be
//! written are remembered here and written later, so a full disk never makes the bridge send twice.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::StoreError;

#[derive(Default)]
pub struct Health {
    /// Sticky until restart: the database file was deleted or replaced while running.
    lost: Mutex<Option<String>>,
    /// The latest write that failed for want of a writable disk, until a probe write succeeds.
    failing: Mutex<Option<String>>,
    /// Delivered messages whose record did not commit: id -> (attempts, when delivered in ms).
    owed: Mutex<HashMap<i64, (i64, i64)>>,
}

impl Health {
    /// Notes a job's outcome: a write the disk refused makes the store unhealthy.
    pub(super) fn observe(&self, error: Option<&StoreError>) {
        if let Some(e) = error.filter(|e| e.is_write_trouble()) {
            *self.failing.lock().expect("health lock") = Some(e.to_string());
        }
    }

    pub(super) fn recovered(&self) {
        self.failing.lock().expect("health lock").take();
    }

    pub(super) fn failing(&self) -> bool {
        self.failing.lock().expect("health lock").is_some()
    }

    pub(super) fn lose(&self, why: String) {
        self.lost.lock().expect("health lock").get_or_insert(why);
    }

    /// What keeps the store from accepting notifications, if anything.
    pub fn problem(&self) -> Option<String> {
        let lost = self.lost.lock().expect("health lock").clone();
        lost.or_else(|| self.failing.lock().expect("health lock").clone())
    }

    pub(super) fn owe(&self, id: i64, attempts: i64, at_ms: i64) {
        self.owed.lock().expect("health lock").insert(id, (attempts, at_ms));
    }

    pub(super) fn owed(&self) -> Vec<(i64, i64, i64)> {
        self.owed.lock().expect("health lock").iter().map(|(id, (a, t))| (*id, *a, *t)).collect()
    }

    /// How many delivery records are owed (no copy of them).
    pub(super) fn owed_len(&self) -> usize {
        self.owed.lock().expect("health lock").len()
    }

    pub(super) fn paid(&self, ids: &[i64]) {
        let mut owed = self.owed.lock().expect("health lock");
        for id in ids {
            owed.remove(id);
        }
    }

    pub(super) fn is_owed(&self, id: i64) -> bool {
        self.owed.lock().expect("health lock").contains_key(&id)
    }
}

/// Which file the database is: a deleted or replaced one is told apart by device and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileId {
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileId {
    pub fn of(path: &Path) -> std::io::Result<FileId> {
        let m = std::fs::metadata(path)?;
        Ok(FileId { path: path.to_path_buf(), dev: m.dev(), ino: m.ino() })
    }

    /// Why the path no longer leads to this file, if it does not.
    pub fn changed(&self) -> Option<String> {
        match FileId::of(&self.path) {
            Ok(now) if now == *self => None,
            Ok(_) => Some(format!(
                "the database file {} was replaced by another file while running; notifications accepted since are only in the old file",
                self.path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "the database file {} was deleted while running; what it held is lost at the next restart",
                self.path.display()
            )),
            Err(e) => Some(format!("cannot check the database file {}: {e}", self.path.display())),
        }
    }
}
