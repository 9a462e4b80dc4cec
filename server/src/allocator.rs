//! The process's allocator: mimalloc, for the server's Rust code (the global allocator) and for
//! SQLite (`SQLITE_CONFIG_MALLOC`), in place of glibc's `malloc`.
//!
//! Why (`bench/RESULTS.md`, "2026-12-03"): under load a call spends about an eighth of its CPU in
//! glibc's `malloc` and `free`; with mimalloc, SQLite serves more calls a second at c=32 and
//! `/v1` spends less CPU a call (PostgreSQL moved within the noise). Its defaults keep much more memory resident (an argon2 hash's 19 MiB after a
//! login, arenas committed and backed by huge pages), so it is built and set to return memory:
//! - `.cargo/config.toml` compiles two defaults into mimalloc's C build, because mimalloc reads
//!   its options before `main` runs: arenas committed as they are used
//!   (`MI_DEFAULT_ARENA_EAGER_COMMIT=0`) and no transparent huge pages (`MI_DEFAULT_ALLOW_THP=0`);
//! - [`init`] makes freed memory go back to the system at once (`purge_delay` 0), an option
//!   mimalloc reads each time it purges.
//!
//! SQLite's other process-wide settings are made here too, since they also must come before SQLite
//! initialises ([`init`]):
//! - **multi-thread mode** (`SQLITE_CONFIG_MULTITHREAD`): no mutex on each connection and
//!   prepared statement. Every SQLite connection of this process is used by one thread at a time:
//!   diesel's is not `Sync` and diesel-async keeps it behind a lock, rusqlite's (backups) is not
//!   `Sync` and opens its connections without that mutex anyway. The bundled SQLite defaults to
//!   serialized mode, which took and released a mutex some 180 times a call
//!   (`bench/instructions.sh`, "2026-12-05, early morning" in `bench/RESULTS.md`);
//! - **no memory statistics** (`SQLITE_CONFIG_MEMSTATUS` off): SQLite otherwise counts every
//!   allocation under a global mutex, for `sqlite3_memory_used` and a soft heap limit, neither of
//!   which this server uses (mimalloc's own figures and `/proc` tell the memory).
//!
//! Plugins loaded as libraries keep their own allocator (a `cdylib` links Rust's default one):
//! memory never crosses the plugin boundary to be freed on the other side (`cloudbase-plugin-api`).

#![expect(
    unsafe_code,
    reason = "allocator settings and SQLite's allocation hooks are C interfaces"
)]

use std::ffi::{c_int, c_void};

use libmimalloc_sys as mi;
use libsqlite3_sys as sqlite;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in `mimalloc.h` (v3); the Rust bindings do not name it.
const PURGE_DELAY: mi::mi_option_t = 15;

/// Sets the allocator and SQLite's process-wide settings up. Call first in `main`, before any
/// thread starts and before SQLite is used. Returns what could not be set, for the caller to
/// report.
pub(crate) fn init() -> Result<(), String> {
    // SAFETY: sets an integer option; mimalloc's options are safe to set from any thread.
    unsafe { mi::mi_option_set(PURGE_DELAY, 0) };
    route_sqlite()?;
    configure_sqlite()
}

/// Multi-thread mode and no memory statistics (see the module's documentation).
fn configure_sqlite() -> Result<(), String> {
    // SAFETY: both options are set before SQLite initialises (`init` runs first in `main`), as
    // `sqlite3_config` requires; `SQLITE_CONFIG_MULTITHREAD` takes no argument and
    // `SQLITE_CONFIG_MEMSTATUS` one `int`.
    let (threads, memstatus) = unsafe {
        (
            sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MULTITHREAD),
            sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MEMSTATUS, c_int::from(false)),
        )
    };
    match (threads, memstatus) {
        (sqlite::SQLITE_OK, sqlite::SQLITE_OK) => Ok(()),
        _ => Err(format!(
            "SQLite kept its threading mode or its memory statistics (sqlite3_config returned \
             {threads} and {memstatus})"
        )),
    }
}

fn route_sqlite() -> Result<(), String> {
    let methods = sqlite::sqlite3_mem_methods {
        xMalloc: Some(sqlite_malloc),
        xFree: Some(sqlite_free),
        xRealloc: Some(sqlite_realloc),
        xSize: Some(sqlite_size),
        xRoundup: Some(sqlite_roundup),
        xInit: Some(sqlite_init),
        xShutdown: Some(sqlite_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: `SQLITE_CONFIG_MALLOC` takes a pointer to the methods and copies them before it
    // returns; it is called before SQLite initialises (first thing in `main`), as SQLite requires.
    let rc = unsafe { sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MALLOC, &raw const methods) };
    if rc == sqlite::SQLITE_OK {
        Ok(())
    } else {
        Err(format!(
            "SQLite kept its own allocator (sqlite3_config returned {rc})"
        ))
    }
}

// SQLite asks for sizes as `int`, never negative; 8-byte alignment is all it needs, and
// mimalloc's blocks are aligned to 16.
unsafe extern "C" fn sqlite_malloc(n: c_int) -> *mut c_void {
    // SAFETY: any size may be asked of `mi_malloc`.
    unsafe { mi::mi_malloc(usize::try_from(n).unwrap_or(0)) }
}

unsafe extern "C" fn sqlite_free(p: *mut c_void) {
    // SAFETY: SQLite frees only what `sqlite_malloc` or `sqlite_realloc` returned.
    unsafe { mi::mi_free(p) }
}

unsafe extern "C" fn sqlite_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // SAFETY: as above, `p` came from mimalloc.
    unsafe { mi::mi_realloc(p, usize::try_from(n).unwrap_or(0)) }
}

unsafe extern "C" fn sqlite_size(p: *mut c_void) -> c_int {
    // SAFETY: `p` is null or came from mimalloc.
    let size = unsafe { mi::mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

/// What `sqlite_malloc(n)` is asked for: SQLite rounds its requests with this.
unsafe extern "C" fn sqlite_roundup(n: c_int) -> c_int {
    n.saturating_add(7) & !7
}

unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    sqlite::SQLITE_OK
}

unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    /// The C build took `.cargo/config.toml`'s defaults: without them mimalloc commits whole
    /// arenas and asks for huge pages, and the idle server holds 20 MB more or worse (measured in
    /// `bench/RESULTS.md`).
    #[test]
    fn mimalloc_is_built_to_return_memory() {
        // `mi_option_arena_eager_commit` and `mi_option_allow_thp` in `mimalloc.h` (v3).
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
        // SAFETY: reads integer options.
        let compiled = unsafe {
            (
                libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(ALLOW_THP),
            )
        };
        assert_eq!(compiled, (0, 0));
    }

    /// SQLite takes the hooks before it initialises, and then allocates through them; its
    /// connections have no mutex of their own, and it keeps no memory statistics.
    #[test]
    fn sqlite_allocates_through_mimalloc_without_mutexes_or_statistics() {
        use libsqlite3_sys as sqlite;
        assert_eq!(super::init(), Ok(()));
        // SAFETY: plain allocation through SQLite's API, freed below.
        let p = unsafe { sqlite::sqlite3_malloc(100) };
        assert!(!p.is_null());
        // SAFETY: `p` is a live allocation; the query only reads mimalloc's bookkeeping.
        assert!(unsafe { libmimalloc_sys::mi_is_in_heap_region(p) });
        let (mut used, mut peak) = (-1_i64, -1_i64);
        // SAFETY: reads a counter into two valid slots.
        let rc = unsafe {
            sqlite::sqlite3_status64(sqlite::SQLITE_STATUS_MEMORY_USED, &mut used, &mut peak, 0)
        };
        assert_eq!(
            (rc, used),
            (sqlite::SQLITE_OK, 0),
            "SQLite counted its memory"
        );
        // SAFETY: `p` came from `sqlite3_malloc`, freed once.
        unsafe { sqlite::sqlite3_free(p) };
        // A connection opened the default way (no `SQLITE_OPEN_NOMUTEX`) has no mutex.
        let mut db = std::ptr::null_mut();
        // SAFETY: opens an in-memory database into a valid slot; closed below.
        let rc = unsafe { sqlite::sqlite3_open(c":memory:".as_ptr(), &mut db) };
        assert_eq!(rc, sqlite::SQLITE_OK);
        // SAFETY: `db` is the open connection.
        assert!(unsafe { sqlite::sqlite3_db_mutex(db) }.is_null());
        // SAFETY: closes the connection opened above, once.
        assert_eq!(unsafe { sqlite::sqlite3_close(db) }, sqlite::SQLITE_OK);
        // A second setup is refused (SQLite is initialised now), and says so.
        assert!(super::init().is_err());
    }
}
