//! Reading a file with a size cap enforced while reading, never from metadata: special files
//! (`/dev/zero`, pipes, `/proc` entries) report size 0 and files can grow after `stat`.

use std::io::{self, Read};
use std::path::Path;

/// Caps for the files the tool reads, by what they hold.
pub const SCENARIO: u64 = 512 * 1024;
/// A bundle carries attachments (base64), so it is the largest input.
pub const BUNDLE: u64 = 64 << 20;
/// A key file is three short lines.
pub const KEY: u64 = 16 * 1024;
pub const SIGNED_RESULT: u64 = 4 << 20;
/// Journals and logs a lab writes as it runs (evidence, hints, load figures, state).
pub const JOURNAL: u64 = 32 << 20;

/// At most `cap` bytes of `path`; a longer file is an error of kind `FileTooLarge`.
pub fn read(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    read_from(std::fs::File::open(path)?, cap)
}

/// [`read`] of a file a user named, which may be anything: opened non-blocking, so a FIFO
/// without a writer reads as empty instead of waiting for one; a directory is an error of
/// kind `IsADirectory`.
pub fn read_named(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory, not a file",
        ));
    }
    read_from(file, cap)
}

fn read_from(file: std::fs::File, cap: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(out)
}

/// [`read`], as UTF-8 text. Invalid UTF-8 is an `InvalidData` error that says where (line,
/// column and byte offset of the first bad byte).
pub fn read_to_string(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read(path, cap)?).map_err(|e| {
        let (line, column) = not_utf8_at(e.as_bytes(), e.utf8_error().valid_up_to());
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text: line {line}, column {column} (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// The 1-based line and column (in characters) of byte `offset`, which follows valid UTF-8.
pub fn not_utf8_at(bytes: &[u8], offset: usize) -> (u32, u32) {
    let before = std::str::from_utf8(&bytes[..offset.min(bytes.len())]).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

fn too_large(cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("larger than {cap} bytes, the most accepted"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_capped_while_reading() {
        let e = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(read(Path::new("/dev/null"), 0).unwrap().is_empty());
    }

    #[test]
    fn bad_utf8_says_where() {
        let dir = std::env::temp_dir().join(format!("capped-{}", std::process::id()));
        std::fs::write(&dir, b"a: 1\nb: x\xffy\n").unwrap();
        let e = read_to_string(&dir, 100).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(e.to_string().contains("line 2, column 5 (byte 9)"), "{e}");
    }
}
