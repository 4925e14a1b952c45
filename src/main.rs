//! The `dialer` binary: parse the command line, set up logging, run, and turn the result into an
//! exit code (0 success, 2 usage error, 1 anything else) with one `error:` line.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc for the Rust side: a placement run spent 15 % of its samples in glibc's malloc
/// (`_int_malloc`, `malloc_consolidate`) under the HTTP and JSON allocations of every callback.
/// `bench_placement`, 100,000 contacts, limit lifted, quiet machine: 830 calls/s and RSS 86.6 MB
/// after 100,000 calls, against 635 calls/s and 174 MB with glibc's (two arenas).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the
/// same in its v2 and v3; libmimalloc-sys names neither).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once, and arenas are committed as they are used: with
/// mimalloc's defaults a 1M-row import peaked at 87.5 MB RSS, with these at 43.7 MB, as fast.
/// It runs as a constructor (`.init_array`), before anything allocates: the first arena is made
/// by the first allocation, and setting the options in `main` came too late for it (65 MB).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static RETURN_MEMORY_PROMPTLY: extern "C" fn() = return_memory_promptly;

#[cfg(target_os = "linux")]
extern "C" fn return_memory_promptly() {
    // SAFETY: mi_option_set only stores an allocator option.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// glibc's malloc (SQLite's allocations) gives each thread that allocates concurrently an arena
/// of its own (up to 8 per core); two keep a daemon's RSS flat as calls are placed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator tunables; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = match dialer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    dialer::logging::init(cli.verbose, cli.quiet, cli.log_format);
    match dialer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
