//! `portcullis`: the command line is in `src/cli/`, one file per command.

/// mimalloc rather than glibc's malloc: a request allocates and frees many
/// small buffers across threads, where glibc's arenas spent 11 % of a
/// check's CPU (the book: docs/development/performance-log/, 2026-11-30).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
