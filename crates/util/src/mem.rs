//! Giving freed memory back to the operating system. glibc's allocator
//! keeps what a burst of work freed (a million-path stage request, a large
//! listing) in its arenas: the process stays at its peak for good. A trim
//! after such work, and now and then, returns the free pages.

/// Returns the allocator's free memory to the operating system (glibc's
/// `malloc_trim(0)`); elsewhere nothing. Takes milliseconds on a large
/// heap: call it from a blocking thread.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim(3) takes an integer and only releases free
    // memory of the allocator's own arenas, under the allocator's locks; it
    // touches no memory that is in use and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

/// [`trim`] on a blocking thread.
pub async fn trim_later() {
    let _ = tokio::task::spawn_blocking(trim).await;
}
