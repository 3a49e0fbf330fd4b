//! `fog tui`: a live terminal monitor of one node or a whole devnet.
//!
//! Elm style, as in bottom and oha: the collector ([`collect`]) polls every
//! node's control API and feeds messages to the model ([`app`]); the loop
//! selects over the terminal's key events, the collector, a clock tick and a
//! render interval; the view ([`view`]) draws only from the model. The
//! terminal is restored on every exit, on a panic too (ratatui's `try_init`
//! installs a panic hook that restores the terminal and then calls the hook
//! that was there before).

mod app;
mod collect;
#[cfg(test)]
mod fixture;
mod view;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{Event, EventStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use self::app::{App, Msg};
pub(crate) use self::collect::Target;
use self::collect::{Poller, now_ms};
use crate::cli::GlobalArgs;

/// Messages the collector may queue before it waits for the model.
const QUEUE_PER_NODE: usize = 4;
/// Shortest time between two frames.
const FRAME: Duration = Duration::from_millis(100);

/// `fog tui`.
#[derive(Debug, Args)]
#[command(
    after_help = "Keys: Tab/Shift-Tab pane, ↑↓ or j/k move, 1-9 or n/p node, ? help, q quit.\n\
With --json, every node is asked once and the answers are printed as one document."
)]
pub(crate) struct TuiArgs {
    /// A node's data directory (it holds `api.addr` and `api.token`). Repeat
    /// for several nodes. Default, when no node is named otherwise:
    /// `$FOG_DATA_DIR`, else `./.fog`.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub(crate) data_dirs: Vec<PathBuf>,
    /// A devnet directory: each `node-N` directory in it is a node's data
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) devnet: Option<PathBuf>,
    /// A node's control API address (`host:port`), with --token-file.
    #[arg(long, value_name = "HOST:PORT", requires = "token_file")]
    pub(crate) api: Option<String>,
    /// The file holding the API token for --api.
    #[arg(long, value_name = "FILE", requires = "api")]
    pub(crate) token_file: Option<PathBuf>,
    /// How often every node is asked for its status, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub(crate) refresh_ms: u64,
}

impl TuiArgs {
    /// The nodes to monitor, in the order they are shown.
    fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let mut targets: Vec<Target> = self
            .data_dirs
            .iter()
            .cloned()
            .map(Target::data_dir)
            .collect();
        if let Some(devnet) = &self.devnet {
            targets.extend(devnet_nodes(devnet)?.into_iter().map(Target::data_dir));
        }
        if let (Some(addr), Some(token_file)) = (&self.api, &self.token_file) {
            targets.push(Target::api(addr.clone(), token_file.clone()));
        }
        if targets.is_empty() {
            let dir = std::env::var_os("FOG_DATA_DIR")
                .map_or_else(|| PathBuf::from(".fog"), PathBuf::from);
            targets.push(Target::data_dir(dir));
        }
        Ok(targets)
    }
}

/// The `node-N` directories of a devnet, by N.
fn devnet_nodes(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading devnet {}", dir.display()))?;
    let mut nodes = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading devnet {}", dir.display()))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("node-"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(number) = number
            && entry.path().is_dir()
        {
            nodes.push((number, entry.path()));
        }
    }
    if nodes.is_empty() {
        bail!(
            "{} holds no node-N directories (is a devnet running there?)",
            dir.display()
        );
    }
    nodes.sort();
    Ok(nodes.into_iter().map(|(_, path)| path).collect())
}

/// Runs `fog tui`.
pub(crate) fn run(args: &TuiArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let targets = args.targets()?;
    let every = Duration::from_millis(args.refresh_ms);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if global.json {
        return runtime.block_on(print_once(targets, every));
    }
    if !std::io::stdout().is_terminal() {
        bail!(
            "fog tui draws on a terminal and stdout is not one (`fog tui --json` prints one reading of every node)"
        );
    }
    runtime.block_on(monitor(targets, every))
}

/// Asks every target once and prints the answers as one JSON document:
/// `{"nodes": [{"target", "up", "status", "error"}]}`.
async fn print_once(targets: Vec<Target>, every: Duration) -> anyhow::Result<()> {
    let timeout = every.max(Duration::from_secs(5));
    let polls = targets.into_iter().map(|target| async move {
        let label = target.label.clone();
        let result = Poller::new(target, timeout).poll().await;
        let (status, error) = match result {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(error)),
        };
        serde_json::json!({
            "target": label,
            "up": status.is_some(),
            "status": status,
            "error": error,
        })
    });
    let nodes = futures_util::future::join_all(polls).await;
    println!("{}", serde_json::json!({ "nodes": nodes }));
    Ok(())
}

/// Restores the terminal when dropped (normal exit and errors; panics are
/// covered by the hook `ratatui::try_init` installs).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Monitors `targets`, polling each every `every`, until the user quits.
/// Usable from any command already inside a tokio runtime (`fog devnet up
/// --tui`).
pub(crate) async fn monitor(targets: Vec<Target>, every: Duration) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(QUEUE_PER_NODE * targets.len().max(1));
    let collector = collect::spawn(&targets, every, &tx);
    drop(tx);
    let mut app = App::new(targets.into_iter().map(|t| t.label).collect(), now_ms());
    let restore = Restore;
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let result = event_loop(&mut terminal, &mut app, rx).await;
    drop(restore);
    drop(collector);
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    mut updates: mpsc::Receiver<Msg>,
) -> anyhow::Result<()> {
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut render = tokio::time::interval(FRAME);
    render.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("watching SIGHUP")?;
    let mut dirty = true;
    while !app.quit {
        tokio::select! {
            _ = render.tick() => {
                if dirty {
                    terminal.draw(|frame| view::draw(frame, app)).context("drawing")?;
                    dirty = false;
                }
            }
            _ = tick.tick() => {
                app.update(Msg::Tick { now_ms: now_ms() });
                dirty = true;
            }
            Some(msg) = updates.recv() => {
                app.update(msg);
                dirty = true;
            }
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    app.update(Msg::Key(key));
                    // Keys are answered at once, not at the next frame.
                    terminal.draw(|frame| view::draw(frame, app)).context("drawing")?;
                    dirty = false;
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("reading the terminal"),
                None => break,
            },
            _ = terminate.recv() => break,
            _ = hangup.recv() => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TuiArgs,
    }

    fn parse(argv: &[&str]) -> Result<TuiArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("tui").chain(argv.iter().copied())).map(|w| w.args)
    }

    #[test]
    fn targets_in_command_line_order() {
        let devnet = tempfile::tempdir().unwrap();
        for n in [10, 2, 0, 1] {
            std::fs::create_dir(devnet.path().join(format!("node-{n}"))).unwrap();
        }
        std::fs::create_dir(devnet.path().join("node-x")).unwrap();
        std::fs::write(devnet.path().join("node-3"), "a file, not a node").unwrap();
        let devnet_arg = devnet.path().to_str().unwrap();
        let args = parse(&[
            "--data-dir",
            "/srv/a",
            "--devnet",
            devnet_arg,
            "--api",
            "127.0.0.1:7000",
            "--token-file",
            "/tmp/t",
        ])
        .unwrap();
        let labels: Vec<String> = args
            .targets()
            .unwrap()
            .into_iter()
            .map(|t| t.label)
            .collect();
        assert_eq!(
            labels,
            [
                "a",
                "node-0",
                "node-1",
                "node-2",
                "node-10",
                "127.0.0.1:7000"
            ]
        );
    }

    #[test]
    fn api_needs_a_token_file_and_refresh_is_bounded() {
        assert!(parse(&["--api", "127.0.0.1:1"]).is_err());
        assert!(parse(&["--token-file", "t"]).is_err());
        assert!(parse(&["--refresh-ms", "5"]).is_err());
        assert_eq!(parse(&[]).unwrap().refresh_ms, 1000);
    }

    #[test]
    fn an_empty_devnet_is_an_error() {
        let devnet = tempfile::tempdir().unwrap();
        let args = parse(&["--devnet", devnet.path().to_str().unwrap()]).unwrap();
        let error = args.targets().unwrap_err().to_string();
        assert!(error.contains("no node-N"), "{error}");
    }
}
