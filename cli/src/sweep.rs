//! `vramtrace sweep`: growth per token against an OpenAI-compatible server (issue 6).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct SweepArgs {}

pub fn sweep(_args: SweepArgs) -> Result<ExitCode, String> {
    Err("sweep is not implemented yet".into())
}
