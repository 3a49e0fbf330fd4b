//! `fog completions <shell>`: shell completion scripts from the clap tree.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// Writes the completion script for `args.shell` to `out`.
///
/// The script is generated into memory first, so a closed pipe
/// (`fog completions bash | head`) is an error, not a panic.
pub(crate) fn run(args: &CompletionsArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "fog", &mut script);
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}
