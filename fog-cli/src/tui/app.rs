//! The monitor's model and its update function (Elm style). Every change of
//! state is a [`Msg`] applied by [`App::update`]: keys, status answers from
//! the collector, clock ticks. The view only reads the model (and the table
//! scroll offsets ratatui keeps in [`TableState`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::widgets::TableState;

use crate::node::api::StatusSnapshot;

/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;

/// The panes that take the keyboard focus, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pane {
    /// The peers the selected node knows.
    Peers,
    /// The selected node's jobs.
    Jobs,
    /// The ledger's proposals.
    Proposals,
}

impl Pane {
    const ORDER: [Pane; 3] = [Pane::Peers, Pane::Jobs, Pane::Proposals];

    fn position(self) -> usize {
        Self::ORDER.iter().position(|p| *p == self).unwrap_or(0)
    }

    fn next(self) -> Self {
        Self::ORDER[(self.position() + 1) % Self::ORDER.len()]
    }

    fn prev(self) -> Self {
        Self::ORDER[(self.position() + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }

    /// The pane's name in the footer.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pane::Peers => "peers",
            Pane::Jobs => "jobs",
            Pane::Proposals => "proposals",
        }
    }
}

/// What the monitor knows about one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NodeEntry {
    /// How the node was named on the command line (data dir name, address).
    pub(crate) label: String,
    /// The last status it answered, if it ever did (kept while it is down).
    pub(crate) snapshot: Option<StatusSnapshot>,
    /// Why the last poll failed, if it did.
    pub(crate) error: Option<String>,
    /// Unix milliseconds of the last answer.
    pub(crate) last_ok_ms: Option<u64>,
    /// Polls answered so far.
    pub(crate) answers: u64,
    /// Polls that failed so far.
    pub(crate) failures: u64,
}

impl NodeEntry {
    fn new(label: String) -> Self {
        Self {
            label,
            ..Self::default()
        }
    }

    /// Whether the last poll was answered.
    pub(crate) fn is_up(&self) -> bool {
        self.snapshot.is_some() && self.error.is_none()
    }

    /// Whether no poll has finished yet.
    pub(crate) fn is_waiting(&self) -> bool {
        self.snapshot.is_none() && self.error.is_none()
    }

    /// The node's own name once it answered, its label before.
    pub(crate) fn name(&self) -> &str {
        match &self.snapshot {
            Some(s) if !s.node.name.is_empty() => &s.node.name,
            _ => &self.label,
        }
    }
}

/// Everything that changes the model.
#[derive(Debug, Clone)]
pub(crate) enum Msg {
    /// A key was pressed.
    Key(KeyEvent),
    /// The collector polled node `node` at `at_ms` (Unix milliseconds).
    Status {
        /// Index of the node in [`App::nodes`].
        node: usize,
        /// When the poll ended.
        at_ms: u64,
        /// The status, or why there is none.
        result: Result<Box<StatusSnapshot>, String>,
    },
    /// The clock moved (once a second).
    Tick {
        /// Unix milliseconds now.
        now_ms: u64,
    },
}

/// The monitor's whole state.
#[derive(Debug)]
pub(crate) struct App {
    /// The monitored nodes, in command-line order.
    pub(crate) nodes: Vec<NodeEntry>,
    /// Index of the node shown.
    pub(crate) selected: usize,
    /// The pane the arrows move in.
    pub(crate) focus: Pane,
    /// Selection and scroll of the peers table.
    pub(crate) peers: TableState,
    /// Selection and scroll of the jobs table.
    pub(crate) jobs: TableState,
    /// Selection and scroll of the proposals table.
    pub(crate) proposals: TableState,
    /// Whether the key help is open.
    pub(crate) help: bool,
    /// Set when the user asked to leave.
    pub(crate) quit: bool,
    /// Unix milliseconds at the last tick (ages are computed against it).
    pub(crate) now_ms: u64,
    /// Id of the selected job, so that the selection follows the job when
    /// newer jobs push it down the list.
    selected_job: Option<String>,
}

impl App {
    /// A model for nodes named `labels`, nothing polled yet.
    pub(crate) fn new(labels: Vec<String>, now_ms: u64) -> Self {
        Self {
            nodes: labels.into_iter().map(NodeEntry::new).collect(),
            selected: 0,
            focus: Pane::Jobs,
            peers: TableState::default(),
            jobs: TableState::default(),
            proposals: TableState::default(),
            help: false,
            quit: false,
            now_ms,
            selected_job: None,
        }
    }

    /// The node shown, if there is any.
    pub(crate) fn current(&self) -> Option<&NodeEntry> {
        self.nodes.get(self.selected)
    }

    /// The status of the node shown, if it ever answered.
    pub(crate) fn snapshot(&self) -> Option<&StatusSnapshot> {
        self.current().and_then(|n| n.snapshot.as_ref())
    }

    /// Applies one message.
    pub(crate) fn update(&mut self, msg: Msg) {
        match msg {
            Msg::Key(key) => self.key(key),
            Msg::Status {
                node,
                at_ms,
                result,
            } => {
                let Some(entry) = self.nodes.get_mut(node) else {
                    return;
                };
                match result {
                    Ok(snapshot) => {
                        entry.snapshot = Some(*snapshot);
                        entry.error = None;
                        entry.last_ok_ms = Some(at_ms);
                        entry.answers += 1;
                    }
                    Err(error) => {
                        entry.error = Some(error);
                        entry.failures += 1;
                    }
                }
                if node == self.selected {
                    self.reconcile();
                }
            }
            Msg::Tick { now_ms } => self.now_ms = now_ms,
        }
    }

    fn key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            if matches!(key.code, KeyCode::Char('c' | 'd')) {
                self.quit = true;
            }
            return;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => self.quit = true,
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.help = false,
                _ => {}
            }
            return;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('?') | KeyCode::F(1) => self.help = true,
            KeyCode::Tab => self.focus = self.focus.next(),
            KeyCode::BackTab => self.focus = self.focus.prev(),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(PAGE as isize),
            KeyCode::PageUp => self.move_by(-(PAGE as isize)),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX),
            KeyCode::Right | KeyCode::Char('n') if !self.nodes.is_empty() => {
                self.select_node((self.selected + 1) % self.nodes.len());
            }
            KeyCode::Left | KeyCode::Char('p') if !self.nodes.is_empty() => {
                let count = self.nodes.len();
                self.select_node((self.selected + count - 1) % count);
            }
            KeyCode::Char(c @ '1'..='9') => {
                let index = (c as usize) - ('1' as usize);
                if index < self.nodes.len() {
                    self.select_node(index);
                }
            }
            _ => {}
        }
    }

    /// Shows node `index` with fresh selections.
    fn select_node(&mut self, index: usize) {
        if index == self.selected {
            return;
        }
        self.selected = index;
        self.peers = TableState::default();
        self.jobs = TableState::default();
        self.proposals = TableState::default();
        self.selected_job = None;
        self.reconcile();
    }

    /// Rows of `pane` for the node shown.
    pub(crate) fn rows(&self, pane: Pane) -> usize {
        self.snapshot().map_or(0, |s| match pane {
            Pane::Peers => s.peers.len(),
            Pane::Jobs => s.jobs.len(),
            Pane::Proposals => s.dao.proposals.len(),
        })
    }

    fn state_mut(&mut self, pane: Pane) -> &mut TableState {
        match pane {
            Pane::Peers => &mut self.peers,
            Pane::Jobs => &mut self.jobs,
            Pane::Proposals => &mut self.proposals,
        }
    }

    /// Moves the focused pane's selection by `delta` rows, stopping at the
    /// ends (`isize::MIN`/`MAX` jump to them).
    fn move_by(&mut self, delta: isize) {
        let pane = self.focus;
        let rows = self.rows(pane);
        if rows == 0 {
            return;
        }
        let state = self.state_mut(pane);
        let current = state.selected().unwrap_or(0).min(rows - 1);
        let target = current.saturating_add_signed(delta).min(rows - 1);
        state.select(Some(target));
        if pane == Pane::Jobs {
            self.remember_job();
        }
    }

    fn remember_job(&mut self) {
        let id = self
            .jobs
            .selected()
            .and_then(|i| self.snapshot().and_then(|s| s.jobs.get(i)))
            .map(|j| j.id.clone());
        self.selected_job = id;
    }

    /// Keeps every selection on a row that exists after the node shown
    /// answered; the selected job stays selected when it moved.
    fn reconcile(&mut self) {
        let moved_job = self.selected_job.as_ref().and_then(|id| {
            self.snapshot()
                .and_then(|s| s.jobs.iter().position(|j| &j.id == id))
        });
        if let Some(index) = moved_job {
            self.jobs.select(Some(index));
        }
        for pane in Pane::ORDER {
            let rows = self.rows(pane);
            let state = self.state_mut(pane);
            if rows == 0 {
                state.select(None);
            } else {
                let index = state.selected().unwrap_or(0).min(rows - 1);
                state.select(Some(index));
            }
        }
        self.remember_job();
    }
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::{KeyEventState, KeyModifiers};

    use super::*;
    use crate::tui::fixture;

    fn press(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn app_with_fixture() -> App {
        let mut app = App::new(
            vec!["node-0".into(), "node-1".into(), "node-2".into()],
            fixture::NOW_MS,
        );
        app.update(Msg::Status {
            node: 0,
            at_ms: fixture::NOW_MS,
            result: Ok(Box::new(fixture::snapshot())),
        });
        app
    }

    #[test]
    fn quit_keys() {
        for code in [KeyCode::Char('q'), KeyCode::Esc] {
            let mut app = app_with_fixture();
            app.update(press(code));
            assert!(app.quit, "{code:?}");
        }
        let mut app = app_with_fixture();
        app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL,
        )));
        assert!(app.quit);
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut app = app_with_fixture();
        app.update(Msg::Key(KeyEvent {
            code: KeyCode::Char('q'),
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        }));
        assert!(!app.quit);
    }

    #[test]
    fn tab_cycles_panes_both_ways() {
        let mut app = app_with_fixture();
        assert_eq!(app.focus, Pane::Jobs);
        app.update(press(KeyCode::Tab));
        assert_eq!(app.focus, Pane::Proposals);
        app.update(press(KeyCode::Tab));
        assert_eq!(app.focus, Pane::Peers);
        app.update(press(KeyCode::Tab));
        assert_eq!(app.focus, Pane::Jobs);
        app.update(press(KeyCode::BackTab));
        assert_eq!(app.focus, Pane::Peers);
        app.update(press(KeyCode::BackTab));
        assert_eq!(app.focus, Pane::Proposals);
    }

    #[test]
    fn arrows_and_vim_keys_move_within_bounds() {
        let mut app = app_with_fixture();
        let jobs = app.rows(Pane::Jobs);
        assert!(jobs > 3);
        assert_eq!(app.jobs.selected(), Some(0));
        app.update(press(KeyCode::Up));
        assert_eq!(app.jobs.selected(), Some(0));
        app.update(press(KeyCode::Down));
        app.update(press(KeyCode::Char('j')));
        assert_eq!(app.jobs.selected(), Some(2));
        app.update(press(KeyCode::Char('k')));
        assert_eq!(app.jobs.selected(), Some(1));
        app.update(press(KeyCode::End));
        assert_eq!(app.jobs.selected(), Some(jobs - 1));
        app.update(press(KeyCode::Down));
        assert_eq!(app.jobs.selected(), Some(jobs - 1));
        app.update(press(KeyCode::PageUp));
        assert_eq!(app.jobs.selected(), Some((jobs - 1).saturating_sub(PAGE)));
        app.update(press(KeyCode::Char('g')));
        assert_eq!(app.jobs.selected(), Some(0));
        // Moving in the jobs pane leaves the others alone.
        assert_eq!(app.peers.selected(), Some(0));
        app.update(press(KeyCode::BackTab));
        app.update(press(KeyCode::Down));
        assert_eq!(app.peers.selected(), Some(1));
        assert_eq!(app.jobs.selected(), Some(0));
    }

    #[test]
    fn node_switching_by_number_and_n_p() {
        let mut app = app_with_fixture();
        app.update(press(KeyCode::Char('3')));
        assert_eq!(app.selected, 2);
        app.update(press(KeyCode::Char('9')));
        assert_eq!(app.selected, 2, "no ninth node");
        app.update(press(KeyCode::Char('n')));
        assert_eq!(app.selected, 0, "wraps around");
        app.update(press(KeyCode::Char('p')));
        assert_eq!(app.selected, 2);
        app.update(press(KeyCode::Left));
        assert_eq!(app.selected, 1);
        app.update(press(KeyCode::Char('1')));
        assert_eq!(app.selected, 0);
        assert_eq!(app.jobs.selected(), Some(0));
    }

    #[test]
    fn a_node_without_data_has_no_selection_and_ignores_moves() {
        let mut app = app_with_fixture();
        app.update(press(KeyCode::Char('2')));
        assert_eq!(app.rows(Pane::Jobs), 0);
        app.update(press(KeyCode::Down));
        app.update(press(KeyCode::End));
        assert_eq!(app.jobs.selected(), None);
    }

    #[test]
    fn help_opens_and_swallows_keys_until_closed() {
        let mut app = app_with_fixture();
        app.update(press(KeyCode::Char('?')));
        assert!(app.help);
        app.update(press(KeyCode::Down));
        app.update(press(KeyCode::Char('n')));
        assert_eq!(app.jobs.selected(), Some(0));
        assert_eq!(app.selected, 0);
        app.update(press(KeyCode::Esc));
        assert!(!app.help);
        assert!(!app.quit, "Esc closes the help first");
        app.update(press(KeyCode::Char('?')));
        app.update(press(KeyCode::Char('q')));
        assert!(app.quit);
    }

    #[test]
    fn selection_follows_the_job_when_newer_jobs_arrive() {
        let mut app = app_with_fixture();
        app.update(press(KeyCode::Down));
        app.update(press(KeyCode::Down));
        let chosen = app.snapshot().unwrap().jobs[2].id.clone();
        let mut newer = fixture::snapshot();
        let mut fresh = newer.jobs[0].clone();
        fresh.id = "ffffffff00".into();
        newer.jobs.insert(0, fresh);
        app.update(Msg::Status {
            node: 0,
            at_ms: fixture::NOW_MS + 1000,
            result: Ok(Box::new(newer)),
        });
        assert_eq!(app.jobs.selected(), Some(3));
        assert_eq!(app.snapshot().unwrap().jobs[3].id, chosen);
    }

    #[test]
    fn selection_is_clamped_when_the_list_shrinks() {
        let mut app = app_with_fixture();
        app.update(press(KeyCode::End));
        let mut fewer = fixture::snapshot();
        fewer.jobs.truncate(2);
        app.update(Msg::Status {
            node: 0,
            at_ms: fixture::NOW_MS,
            result: Ok(Box::new(fewer)),
        });
        assert_eq!(app.jobs.selected(), Some(1));
    }

    #[test]
    fn a_failed_poll_keeps_the_last_status_and_records_the_error() {
        let mut app = app_with_fixture();
        app.update(Msg::Status {
            node: 0,
            at_ms: fixture::NOW_MS + 5000,
            result: Err("connection refused".into()),
        });
        let node = app.current().unwrap();
        assert!(!node.is_up());
        assert!(node.snapshot.is_some());
        assert_eq!(node.error.as_deref(), Some("connection refused"));
        assert_eq!(node.last_ok_ms, Some(fixture::NOW_MS));
        assert_eq!((node.answers, node.failures), (1, 1));
        // An answer from a node the model does not know is ignored.
        app.update(Msg::Status {
            node: 7,
            at_ms: 0,
            result: Err("x".into()),
        });
        assert_eq!(app.nodes.len(), 3);
    }
}
