//! `portcullis`: the command line is in `src/cli/`, one file per command.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    portcullis::cli::main().await
}
