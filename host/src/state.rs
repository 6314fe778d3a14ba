//! Checkpoints on disk. A checkpoint is written atomically (temporary file,
//! fsync, rename, fsync of the directory), so a crash leaves either the old
//! or the new one, never a torn file.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that `path` is always either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a state file needs a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Checks that checkpoints can be saved in `dir` before anything is
/// delivered: creates it, writes and fsyncs a probe file, and removes it.
/// A checkpoint that cannot be saved after a delivered batch would have
/// every restart deliver that batch again. The error names the directory,
/// the user the process runs as, and the fix.
pub fn probe_writable(dir: &Path) -> Result<()> {
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut file = File::create(&probe)?;
        file.write_all(b"ok")?;
        file.sync_all()?;
        fs::remove_file(&probe)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&probe);
        bail!(
            "the state directory {} cannot be written ({e}); the process runs as {}: create the directory and give that user \
             write access to it (for example `install -d -o {} {}`), or set `state_dir` to a directory it can write",
            dir.display(),
            current_user(),
            current_user_name().unwrap_or_else(|| current_uid().to_string()),
            dir.display()
        );
    }
    Ok(())
}

/// The effective user, as `name (uid N)` where the name is known.
fn current_user() -> String {
    match current_user_name() {
        Some(name) => format!("{name} (uid {})", current_uid()),
        None => format!("uid {}", current_uid()),
    }
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

fn current_user_name() -> Option<String> {
    let uid = current_uid().to_string();
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_string())
    })
}

const FORMAT: &str = "defender-ocsf-checkpoint";

/// The version this build writes. Version 1 kept the component's
/// checkpoint as a JSON string holding JSON; it is still read.
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    format: String,
    version: u32,
    /// The source component's name, so that one state directory is never
    /// read by a component it was not written by.
    source: String,
    saved_at: String,
    /// The component's checkpoint, as the JSON it is (version 2), so that an
    /// operator reads the watermarks as they are; in version 1, a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<Box<serde_json::value::RawValue>>,
    /// A checkpoint that is not JSON: the contract lets it be any text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint_text: Option<String>,
}

/// A checkpoint read back from disk.
#[derive(Debug, PartialEq, Eq)]
pub struct Saved {
    pub source: String,
    pub checkpoint: String,
}

/// The checkpoint of one source, in `state_dir/checkpoint.json`.
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    pub fn new(state_dir: &Path) -> CheckpointStore {
        CheckpointStore {
            path: state_dir.join("checkpoint.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint and the source that wrote it, `None` when there is
    /// none yet. A file that exists but cannot be read is an error: starting
    /// over silently could skip or repeat a range.
    pub fn load(&self) -> Result<Option<Saved>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading the checkpoint {}", self.path.display()));
            }
        };
        let reset = format!(
            "To start over from `start_time`, delete {} (events since the last checkpoint may then be collected again or skipped)",
            self.path.display()
        );
        let file: CheckpointFile = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => bail!("the checkpoint {} is corrupt ({e}). {reset}", self.path.display()),
        };
        if file.format != FORMAT || !(1..=VERSION).contains(&file.version) {
            bail!("{} is not a checkpoint this version writes. {reset}", self.path.display());
        }
        let checkpoint = match (file.version, file.checkpoint, file.checkpoint_text) {
            // Version 1: the checkpoint is a JSON string.
            (1, Some(raw), None) => match serde_json::from_str::<String>(raw.get()) {
                Ok(text) => text,
                Err(e) => bail!("the checkpoint {} is corrupt ({e}). {reset}", self.path.display()),
            },
            (_, Some(raw), None) => raw.get().to_string(),
            (_, None, Some(text)) => text,
            _ => bail!("the checkpoint {} is corrupt (no checkpoint in it). {reset}", self.path.display()),
        };
        Ok(Some(Saved {
            source: file.source,
            checkpoint,
        }))
    }

    /// Fails unless `saved` was written by `source`.
    pub fn check_source(&self, saved: &Saved, source: &str) -> Result<()> {
        if saved.source != source {
            bail!(
                "the checkpoint {} belongs to the source `{}`, not `{source}`; use another state_dir",
                self.path.display(),
                saved.source
            );
        }
        Ok(())
    }

    pub fn save(&self, source: &str, checkpoint: &str) -> Result<()> {
        // Kept byte for byte: RawValue is the component's own text.
        let (checkpoint, checkpoint_text) = match serde_json::value::RawValue::from_string(checkpoint.to_string()) {
            Ok(raw) => (Some(raw), None),
            Err(_) => (None, Some(checkpoint.to_string())),
        };
        let file = CheckpointFile {
            format: FORMAT.into(),
            version: VERSION,
            source: source.into(),
            saved_at: chrono::Utc::now().to_rfc3339(),
            checkpoint,
            checkpoint_text,
        };
        let bytes = serde_json::to_vec_pretty(&file)?;
        write_atomically(&self.path, &bytes).with_context(|| format!("saving the checkpoint {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk: the write of the new checkpoint fails with ENOSPC (the
    /// temporary file is a link to /dev/full), the error names the file and
    /// the cause, and the previous checkpoint is untouched.
    #[test]
    fn a_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        store.save("s", "{\"x\":1}").unwrap();
        let tmp = dir.path().join(format!(".checkpoint.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let e = format!("{:#}", store.save("s", "{\"x\":2}").unwrap_err());
        assert!(e.contains("No space left on device") && e.contains(".checkpoint.json.tmp"), "{e}");
        assert_eq!(store.load().unwrap().unwrap().checkpoint, "{\"x\":1}");
        assert!(!tmp.exists(), "the failed temporary file is removed");
    }

    #[test]
    fn saves_loads_and_refuses_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        store.save("s", "{\"x\":1}").unwrap();
        let saved = store.load().unwrap().unwrap();
        assert_eq!(saved.checkpoint, "{\"x\":1}");
        store.check_source(&saved, "s").unwrap();
        assert!(
            store
                .check_source(&saved, "other")
                .unwrap_err()
                .to_string()
                .contains("belongs to the source `s`")
        );

        // The watermarks are JSON in the file, not JSON inside a string.
        let file: serde_json::Value = serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
        assert_eq!(file["checkpoint"], serde_json::json!({"x": 1}), "{file}");
        assert_eq!(file["version"], 2);
        // Any text stays possible, as the contract allows.
        store.save("s", "not json").unwrap();
        assert_eq!(store.load().unwrap().unwrap().checkpoint, "not json");
        // Version 1, read once: the next save writes version 2.
        fs::write(
            store.path(),
            r#"{"format":"defender-ocsf-checkpoint","version":1,"source":"s","saved_at":"2026-01-01T00:00:00Z","checkpoint":"{\"w\":{\"T\":9007199254740993}}"}"#,
        )
        .unwrap();
        assert_eq!(store.load().unwrap().unwrap().checkpoint, r#"{"w":{"T":9007199254740993}}"#);

        fs::write(store.path(), "{\"format\":\"defender-ocsf-checkp").unwrap();
        let e = store.load().unwrap_err().to_string();
        assert!(
            e.contains("corrupt") && e.contains("delete") && e.contains("checkpoint.json"),
            "{e}"
        );
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
