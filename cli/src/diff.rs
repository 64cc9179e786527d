//! `vramtrace diff OLD NEW`: what changed between two runs (issue 7).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DiffArgs {}

pub fn diff(_args: DiffArgs) -> Result<ExitCode, String> {
    Err("diff is not implemented yet".into())
}
