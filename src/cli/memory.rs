//! The process's memory: small pages only.
//!
//! mimalloc reserves its arenas (1 GiB of address space) with
//! `MADV_HUGEPAGE`, and on Linux a 2 MiB transparent huge page is resident
//! whole once one 4 KiB page of it is touched; khugepaged also folds
//! sparsely used 2 MiB ranges into huge pages as it sweeps the process
//! (up to 511 empty pages of 512, the kernel's default), and mimalloc's
//! 64 KiB purges split them again. Under the soak 40-56 MiB of `serve`'s
//! 83-97 MiB of anonymous memory were huge pages, arriving and leaving in
//! steps no allocation explained (BENCHMARKS.md, soak, session 12). A
//! fleet manager's heap is many small objects; it gains nothing from huge
//! pages and its resident size should follow what it holds. So:
//! mimalloc is built without the advice (`no_thp` in Cargo.toml), and the
//! process turns transparent huge pages off for itself at start, which
//! also covers kernels set to `always` and SQLite's and glibc's memory.

/// Turn transparent huge pages off for this process (Linux; elsewhere a
/// no-op). The flag is the kernel's per-process `PR_SET_THP_DISABLE`: it
/// applies to every mapping, existing and future, and children inherit it.
pub fn small_pages_only() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether transparent huge pages are off for this process.
    fn huge_pages_disabled() -> bool {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    #[test]
    fn the_process_turns_huge_pages_off_for_itself() {
        small_pages_only().expect("prctl");
        assert!(huge_pages_disabled());
        // What the kernel reports for the process agrees.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
        if let Some(line) = line {
            assert!(line.ends_with('0'), "{line}");
        }
    }
}
