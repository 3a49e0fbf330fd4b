//! `fog manpages DIR` (hidden): writes the manual pages, `fog.1` and one
//! page per subcommand (`fog-job.1`, `fog-job-run.1`, ...), generated from
//! the command tree. `cargo xtask man` runs it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory};

use crate::cli::{Cli, GlobalArgs};

/// `fog manpages`.
#[derive(Debug, Args)]
pub(crate) struct ManpagesArgs {
    /// Directory to write the pages to (created if missing).
    #[arg(value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// Writes every page into `args.out` and lists the files written.
pub(crate) fn run(args: &ManpagesArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    write_pages(command, &args.out, &mut written)?;
    if global.json {
        let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        println!("{}", serde_json::json!({ "pages": files }));
    } else {
        for path in &written {
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// Writes the page of `command` and of each of its visible subcommands.
fn write_pages(
    command: clap::Command,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), out, written)?;
    }
    let man = clap_mangen::Man::new(command).manual("fog manual");
    let path = out.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    Ok(())
}
