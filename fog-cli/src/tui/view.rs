//! Drawing: one frame from the model, nothing else. The layout fits 80x24
//! and grows with the terminal; widths of 110 and more get extra columns.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, Clear, LineGauge, Paragraph, Row, Sparkline, Table, TableState, Tabs, Wrap,
};

use super::app::{App, NodeEntry, Pane};
use crate::node::api::{DaoView, HarvestView, JobView, MixView, PeerView, StatusSnapshot};

/// Smallest terminal the monitor draws in.
pub(crate) const MIN_WIDTH: u16 = 60;
/// Smallest terminal height the monitor draws in.
pub(crate) const MIN_HEIGHT: u16 = 20;
/// Width from which tables show their optional columns.
const WIDE: u16 = 110;

/// Draws the whole screen.
pub(crate) fn draw(frame: &mut Frame<'_>, app: &mut App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "terminal too small ({}x{}): fog tui needs at least {MIN_WIDTH}x{MIN_HEIGHT} (q quits)",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let (top_h, bottom_h) = match area.height {
        0..24 => (7, 5),
        24..28 => (8, 6),
        28..34 => (9, 8),
        _ => (10, 10),
    };
    let [tabs, summary, top, jobs, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(top_h),
        Constraint::Min(3),
        Constraint::Length(bottom_h),
        Constraint::Length(1),
    ])
    .areas(area);
    let [peers, harvest] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    let [mix, dao] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);

    draw_tabs(frame, tabs, app);
    draw_summary(frame, summary, app);
    // What the jobs pane says when there is no status (it has room for the
    // whole error, which the summary line may cut).
    let absent = match app.current() {
        Some(NodeEntry {
            snapshot: None,
            error: Some(error),
            ..
        }) => format!("no status: {error}"),
        Some(NodeEntry { snapshot: None, .. }) => "waiting for the first answer…".to_owned(),
        _ => "no data".to_owned(),
    };
    let wide = area.width >= WIDE;
    let focus = app.focus;
    let now_ms = app.now_ms;
    let App {
        nodes,
        selected,
        peers: peers_state,
        jobs: jobs_state,
        proposals: proposals_state,
        ..
    } = &mut *app;
    let snapshot = nodes.get(*selected).and_then(|n| n.snapshot.as_ref());
    draw_peers(
        frame,
        peers,
        snapshot.map(|s| &s.peers[..]),
        peers_state,
        focus == Pane::Peers,
        wide,
    );
    draw_harvest(frame, harvest, snapshot.map(|s| &s.harvest));
    draw_jobs(
        frame,
        jobs,
        snapshot,
        jobs_state,
        focus == Pane::Jobs,
        wide,
        now_ms,
        &absent,
    );
    draw_mix(frame, mix, snapshot.map(|s| &s.mix));
    draw_dao(
        frame,
        dao,
        snapshot.map(|s| &s.dao),
        proposals_state,
        focus == Pane::Proposals,
        wide,
    );
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame, area);
    }
}

fn pane_block(title: Line<'_>, focused: bool) -> Block<'_> {
    let border = if focused {
        Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::bordered().border_style(border).title(title)
}

fn title(text: String) -> Span<'static> {
    Span::styled(text, Style::new().add_modifier(Modifier::BOLD))
}

/// A dimmed message inside a pane, wrapped.
fn note(frame: &mut Frame<'_>, area: Rect, text: &str) {
    frame.render_widget(
        Paragraph::new(Span::styled(
            text.to_owned(),
            Style::new().fg(Color::DarkGray),
        ))
        .wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let up = app.nodes.iter().filter(|n| n.is_up()).count();
    let right = format!(" {up}/{} up ", app.nodes.len());
    let [left, right_area] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(right.len() as u16)])
            .areas(area);
    let titles = app.nodes.iter().enumerate().map(|(i, node)| {
        let (mark, color) = node_mark(node);
        let key = if i < 9 {
            format!("{} ", i + 1)
        } else {
            String::new()
        };
        Line::from(vec![
            Span::raw(key),
            Span::raw(node.name().to_owned()),
            Span::raw(" "),
            Span::styled(mark, Style::new().fg(color)),
        ])
    });
    let tabs = Tabs::new(titles)
        .select(app.selected)
        .padding("", "")
        .divider(" │ ")
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD));
    frame.render_widget(tabs, left);
    frame.render_widget(
        Paragraph::new(right).alignment(Alignment::Right).dim(),
        right_area,
    );
}

fn node_mark(node: &NodeEntry) -> (&'static str, Color) {
    if node.is_up() {
        ("●", Color::Green)
    } else if node.is_waiting() {
        ("…", Color::DarkGray)
    } else {
        ("✗", Color::Red)
    }
}

fn draw_summary(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(node) = app.current() else {
        note(frame, area, "no node to monitor");
        return;
    };
    let mut spans = vec![Span::styled(
        node.name().to_owned(),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(error) = &node.error {
        let label = match node.last_ok_ms {
            Some(at) => format!(
                " down, last answer {} ago: ",
                duration(app.now_ms.saturating_sub(at) / 1000)
            ),
            None => " down: ".to_owned(),
        };
        spans.push(Span::styled(
            label,
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(error.clone(), Style::new().fg(Color::Red)));
    }
    match &node.snapshot {
        Some(s) => {
            let sep = || Span::styled(" · ", Style::new().fg(Color::DarkGray));
            let info = &s.node;
            spans.push(sep());
            spans.push(Span::raw(if info.roles.is_empty() {
                "no roles".to_owned()
            } else {
                info.roles.join(",")
            }));
            spans.push(sep());
            spans.push(Span::raw(format!("up {}", duration(info.uptime_s))));
            spans.push(sep());
            spans.push(Span::raw(format!("v{}", info.version)));
            if s.dao.ledger || s.dao.balance > 0 {
                spans.push(sep());
                spans.push(Span::raw(format!("balance {}", human(s.dao.balance))));
            }
            spans.push(sep());
            spans.push(Span::styled(
                short_id(&info.peer_id, 16),
                Style::new().fg(Color::DarkGray),
            ));
        }
        None if node.error.is_none() => spans.push(Span::styled(
            " waiting for the first answer…",
            Style::new().fg(Color::DarkGray),
        )),
        None => {}
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_peers(
    frame: &mut Frame<'_>,
    area: Rect,
    peers: Option<&[PeerView]>,
    state: &mut TableState,
    focused: bool,
    wide: bool,
) {
    let alive = peers.map_or(0, |p| p.iter().filter(|p| p.alive).count());
    let heading = match peers {
        Some(p) => format!(" Peers {alive}/{} alive ", p.len()),
        None => " Peers ".to_owned(),
    };
    let block = pane_block(Line::from(title(heading)), focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(peers) = peers else {
        note(frame, inner, "no data");
        return;
    };
    if peers.is_empty() {
        note(frame, inner, "no peers heard yet");
        return;
    }
    let mut header = vec!["Name", "Up", "Load", "Rep", "Harvest"];
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(2),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(10),
    ];
    if wide {
        header.extend(["Run", "Seen"]);
        widths.extend([Constraint::Length(3), Constraint::Length(6)]);
    }
    header.push("Roles");
    widths.push(Constraint::Fill(1));
    let rows = peers.iter().map(|p| {
        let (mark, color) = if p.alive {
            ("●", Color::Green)
        } else {
            ("✗", Color::Red)
        };
        let mut cells = vec![
            Cell::from(p.name.clone()),
            Cell::from(Span::styled(mark, Style::new().fg(color))),
            Cell::from(percent(p.load)),
            Cell::from(Span::styled(
                format!("{:.2}", finite(p.reputation)),
                Style::new().fg(level_color(finite(p.reputation), 0.5, 0.8)),
            )),
            Cell::from(Span::styled(
                p.harvest.clone(),
                Style::new().fg(harvest_color(&p.harvest)),
            )),
        ];
        if wide {
            cells.push(Cell::from(p.running.to_string()));
            cells.push(Cell::from(format!("{}s", p.last_seen_s)));
        }
        cells.push(Cell::from(p.roles.join(",")));
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().fg(Color::Yellow)))
        .row_highlight_style(highlight(focused));
    frame.render_stateful_widget(table, inner, state);
}

fn highlight(focused: bool) -> Style {
    if focused {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

fn draw_harvest(frame: &mut Frame<'_>, area: Rect, harvest: Option<&HarvestView>) {
    let Some(h) = harvest else {
        let block = pane_block(Line::from(title(" Harvest ".to_owned())), false);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        note(frame, inner, "no data");
        return;
    };
    let state = if h.state.is_empty() {
        "unknown"
    } else {
        &h.state
    };
    let heading = Line::from(vec![
        title(" Harvest: ".to_owned()),
        Span::styled(
            state.to_owned(),
            Style::new()
                .fg(harvest_color(state))
                .add_modifier(Modifier::BOLD),
        ),
        Span::raw(" "),
    ]);
    let mut block = pane_block(heading, false);
    let inner_height = area.height.saturating_sub(2);
    let gauges = gauges(h);
    // The reason gets a line of its own when there is room, else it goes in
    // the bottom border.
    let reason_line = inner_height > gauges.len() as u16;
    if !reason_line && !h.reason.is_empty() {
        block = block.title_bottom(Line::from(format!(" {} ", h.reason)).dim());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut rows = inner;
    if reason_line {
        let [first, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
        note(frame, first, &h.reason);
        rows = rest;
    }
    for (i, gauge) in gauges.into_iter().enumerate() {
        let i = i as u16;
        if i >= rows.height {
            break;
        }
        let line = Rect {
            y: rows.y + i,
            height: 1,
            ..rows
        };
        frame.render_widget(gauge, line);
    }
}

/// One sensor gauge: `name value ━━━━───`.
fn gauge(name: &str, value: Option<String>, ratio: f64, color: Color) -> LineGauge<'static> {
    let known = value.is_some();
    let text = value.unwrap_or_else(|| "n/a".to_owned());
    let label = Line::from(vec![
        Span::raw(format!("{name:<8}")),
        Span::styled(
            format!("{text:>6}"),
            Style::new().fg(if known { color } else { Color::DarkGray }),
        ),
    ]);
    LineGauge::default()
        .label(label)
        .ratio(if known { unit(ratio) } else { 0.0 })
        .filled_symbol("━")
        .unfilled_symbol("─")
        .filled_style(Style::new().fg(color))
        .unfilled_style(Style::new().fg(Color::DarkGray))
}

fn gauges(h: &HarvestView) -> Vec<LineGauge<'static>> {
    let battery = h.battery_pct.map(finite);
    let battery_text = match (battery, h.on_ac) {
        (Some(b), Some(true)) => Some(format!("{b:.0}%+")),
        (Some(b), _) => Some(format!("{b:.0}%")),
        (None, Some(true)) => Some("mains".to_owned()),
        (None, _) => None,
    };
    let battery_ratio =
        battery.map_or(if h.on_ac == Some(true) { 1.0 } else { 0.0 }, |b| b / 100.0);
    let temperature = h.temperature_c.map(finite);
    let others = h.other_cpu_pct.map(finite);
    let memory = h.memory_available_pct.map(finite);
    let idle = h.user_idle_s.map(finite);
    vec![
        gauge(
            "share",
            Some(percent(h.cpu_share)),
            h.cpu_share,
            Color::Green,
        ),
        gauge(
            "battery",
            battery_text,
            battery_ratio,
            battery.map_or(Color::Green, |b| level_color(b, 20.0, 50.0)),
        ),
        gauge(
            "temp",
            temperature.map(|t| format!("{t:.0}°C")),
            temperature.unwrap_or(0.0) / 100.0,
            temperature.map_or(Color::Green, |t| level_color(-t, -80.0, -65.0)),
        ),
        gauge(
            "others",
            others.map(|c| format!("{c:.0}%")),
            others.unwrap_or(0.0) / 100.0,
            others.map_or(Color::Green, |c| level_color(-c, -70.0, -40.0)),
        ),
        gauge(
            "mem free",
            memory.map(|m| format!("{m:.0}%")),
            memory.unwrap_or(0.0) / 100.0,
            memory.map_or(Color::Green, |m| level_color(m, 10.0, 25.0)),
        ),
        // The bar fills over ten minutes of user inactivity.
        gauge(
            "idle",
            idle.map(|s| duration(s as u64)),
            idle.unwrap_or(0.0) / 600.0,
            Color::Blue,
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
fn draw_jobs(
    frame: &mut Frame<'_>,
    area: Rect,
    snapshot: Option<&StatusSnapshot>,
    state: &mut TableState,
    focused: bool,
    wide: bool,
    now_ms: u64,
    absent: &str,
) {
    let heading = match snapshot {
        Some(s) => {
            let c = &s.counts;
            format!(
                " Jobs  sub {}  pend {}  run {}  ok {}  fail {}  canc {}  preempt {}  evid {}  exec {} ",
                c.submitted,
                c.pending,
                c.running,
                c.verified,
                c.failed,
                c.cancelled,
                c.preemptions,
                c.evidence,
                c.executed
            )
        }
        None => " Jobs ".to_owned(),
    };
    let mut block = pane_block(Line::from(title(heading)), focused);
    let jobs = snapshot.map(|s| &s.jobs[..]);
    if let Some(job) = state.selected().and_then(|i| jobs.and_then(|j| j.get(i))) {
        block = block.title_bottom(job_detail(job));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(jobs) = jobs else {
        note(frame, inner, absent);
        return;
    };
    if jobs.is_empty() {
        note(
            frame,
            inner,
            "no jobs yet: submit one with `fog job submit`",
        );
        return;
    }
    let widths = if wide {
        vec![
            Constraint::Length(10),
            Constraint::Length(16),
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Length(7),
            Constraint::Fill(1),
        ]
    } else {
        vec![
            Constraint::Length(8),
            Constraint::Length(12),
            Constraint::Length(4),
            Constraint::Length(3),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(3),
            Constraint::Length(6),
            Constraint::Fill(1),
        ]
    };
    let header = Row::new([
        "Id", "Name", "Kind", "Cls", "Privacy", "State", "Rep", "Pre", "Time", "Nodes",
    ])
    .style(Style::new().fg(Color::Yellow));
    let rows = jobs.iter().map(|j| {
        let kind = if wide {
            j.kind.clone()
        } else {
            short_kind(&j.kind).to_owned()
        };
        let end = j.finished_ms.unwrap_or(now_ms);
        Row::new([
            Cell::from(j.id.clone()),
            Cell::from(j.name.clone()),
            Cell::from(kind),
            Cell::from(j.class.clone()),
            Cell::from(j.privacy.clone()),
            Cell::from(Span::styled(
                j.state.clone(),
                Style::new().fg(job_color(&j.state)),
            )),
            Cell::from(j.replicas.to_string()),
            Cell::from(if j.preemptions == 0 {
                "-".to_owned()
            } else {
                j.preemptions.to_string()
            }),
            Cell::from(duration(end.saturating_sub(j.submitted_ms) / 1000)),
            Cell::from(j.nodes.join(",")),
        ])
    });
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(highlight(focused));
    frame.render_stateful_widget(table, inner, state);
}

/// The bottom line of the jobs pane: what the selected job came to.
fn job_detail(job: &JobView) -> Line<'static> {
    let mut spans = vec![Span::raw(" "), Span::raw(job.id.clone()), Span::raw(": ")];
    if let Some(error) = &job.error {
        spans.push(Span::styled(error.clone(), Style::new().fg(Color::Red)));
    } else if let Some(hash) = &job.output_hash {
        spans.push(Span::raw("output "));
        spans.push(Span::styled(
            short_id(hash, 16),
            Style::new().fg(Color::Green),
        ));
    } else {
        spans.push(Span::raw(job.state.clone()));
        if !job.nodes.is_empty() {
            spans.push(Span::raw(format!(" on {}", job.nodes.join(","))));
        }
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

fn draw_mix(frame: &mut Frame<'_>, area: Rect, mix: Option<&MixView>) {
    let Some(m) = mix else {
        let block = pane_block(Line::from(title(" Mix ".to_owned())), false);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        note(frame, inner, "no data");
        return;
    };
    let heading = if m.enabled {
        format!(
            " Mix {} pps · p50 {} · p99 {} ",
            human(finite(m.pps) as u64),
            millis(m.latency_p50_ms),
            millis(m.latency_p99_ms)
        )
    } else {
        format!(
            " Mix client · p50 {} · p99 {} ",
            millis(m.latency_p50_ms),
            millis(m.latency_p99_ms)
        )
    };
    let counters = format!(
        " rx {} fwd {} dlv {} cov {} drop {} ",
        human(m.received),
        human(m.forwarded),
        human(m.delivered),
        human(m.cover),
        human(m.dropped)
    );
    let block =
        pane_block(Line::from(title(heading)), false).title_bottom(Line::from(counters).dim());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let [pps_area, latency_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(inner);
    sparkline(frame, pps_area, "pps", &m.pps_history, Color::Cyan);
    sparkline(
        frame,
        latency_area,
        "p50 ms",
        &m.latency_history,
        Color::Magenta,
    );
}

/// A labelled sparkline of the newest samples that fit.
fn sparkline(frame: &mut Frame<'_>, area: Rect, name: &str, data: &[u64], color: Color) {
    let [label, chart] =
        Layout::horizontal([Constraint::Length(7), Constraint::Fill(1)]).areas(area);
    let last = data.last().map_or_else(|| "-".to_owned(), |v| human(*v));
    let text = vec![Line::from(name.to_owned()).dim(), Line::from(last)];
    frame.render_widget(Paragraph::new(text), label);
    let shown = &data[data.len().saturating_sub(chart.width as usize)..];
    frame.render_widget(
        Sparkline::default()
            .data(shown)
            .style(Style::new().fg(color)),
        chart,
    );
}

fn draw_dao(
    frame: &mut Frame<'_>,
    area: Rect,
    dao: Option<&DaoView>,
    state: &mut TableState,
    focused: bool,
    wide: bool,
) {
    let heading = match dao {
        Some(d) if d.ledger => format!(
            " DAO h {} · supply {} · paid {} ",
            d.height,
            human(d.supply),
            human(d.rewards_paid)
        ),
        _ => " DAO ".to_owned(),
    };
    let mut block = pane_block(Line::from(title(heading)), focused);
    let proposals = dao.map(|d| &d.proposals[..]);
    if let Some(p) = state
        .selected()
        .and_then(|i| proposals.and_then(|p| p.get(i)))
        && !wide
    {
        block = block.title_bottom(Line::from(format!(" #{} {} ", p.id, p.description)).dim());
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(dao) = dao else {
        note(frame, inner, "no data");
        return;
    };
    if dao.proposals.is_empty() {
        let text = if dao.ledger {
            "no proposals"
        } else {
            "this node holds no ledger"
        };
        note(frame, inner, text);
        return;
    }
    let mut header = vec!["#", "State", "For", "Agst", "Abst", "Veto"];
    let mut widths = vec![
        Constraint::Length(3),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    if wide {
        header.extend(["Kind", "What"]);
        widths.extend([Constraint::Length(9), Constraint::Fill(1)]);
    }
    let rows = dao.proposals.iter().map(|p| {
        let mut cells = vec![
            Cell::from(p.id.to_string()),
            Cell::from(Span::styled(
                p.state.clone(),
                Style::new().fg(proposal_color(&p.state)),
            )),
            Cell::from(Span::styled(
                human(p.votes_for),
                Style::new().fg(Color::Green),
            )),
            Cell::from(Span::styled(
                human(p.votes_against),
                Style::new().fg(Color::Red),
            )),
            Cell::from(human(p.votes_abstain)),
            Cell::from(Span::styled(
                human(p.votes_veto),
                Style::new().fg(Color::Magenta),
            )),
        ];
        if wide {
            cells.push(Cell::from(p.kind.clone()));
            cells.push(Cell::from(p.description.clone()));
        }
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().fg(Color::Yellow)))
        .row_highlight_style(highlight(focused));
    frame.render_stateful_widget(table, inner, state);
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let key = |k: &'static str| Span::styled(k, Style::new().fg(Color::Cyan));
    let line = Line::from(vec![
        Span::styled(
            format!(" {} ", app.focus.name()),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(" "),
        key("Tab"),
        Span::raw(" pane  "),
        key("↑↓ jk"),
        Span::raw(" move  "),
        key("n p 1-9"),
        Span::raw(" node  "),
        key("?"),
        Span::raw(" help  "),
        key("q"),
        Span::raw(" quit"),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let lines: Vec<Line<'_>> = [
        ("Tab / Shift-Tab", "next / previous pane"),
        ("↑ ↓  k j", "move in the pane"),
        ("PgUp PgDn", "move by ten rows"),
        ("Home End  g G", "first / last row"),
        ("n p  → ←", "next / previous node"),
        ("1 … 9", "show node 1 to 9"),
        ("?", "open / close this help"),
        ("q  Esc  Ctrl-C", "quit"),
    ]
    .into_iter()
    .map(|(keys, what)| {
        Line::from(vec![
            Span::styled(format!(" {keys:<16}"), Style::new().fg(Color::Cyan)),
            Span::raw(what),
        ])
    })
    .chain([
        Line::raw(""),
        Line::from(" Panes: peers, jobs, proposals (Tab).").dim(),
        Line::from(" A node that does not answer is shown down").dim(),
        Line::from(" with its last status and the error.").dim(),
    ])
    .collect();
    let width = 48.min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_style(Style::new().fg(Color::Cyan))
                .title(title(" fog tui: keys ".to_owned())),
        ),
        popup,
    );
}

/// `x` when it is a number, 0 otherwise (a node's JSON is not trusted to
/// hold finite floats).
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// `x` clamped to a gauge ratio (ratatui panics outside 0..=1).
fn unit(x: f64) -> f64 {
    finite(x).clamp(0.0, 1.0)
}

fn percent(share: f64) -> String {
    format!("{:.0}%", unit(share) * 100.0)
}

fn millis(ms: f64) -> String {
    let ms = finite(ms);
    if ms >= 10_000.0 {
        format!("{:.0}s", ms / 1000.0)
    } else {
        format!("{ms:.0}ms")
    }
}

/// `n` in at most five characters: 999, 12.3k, 4.5M, 6.7G.
fn human(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// Seconds as `42s`, `3m07s`, `1h02m`, `3d04h`.
fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// The first `n` characters of an id, with an ellipsis when cut.
fn short_id(id: &str, n: usize) -> String {
    if id.chars().count() <= n {
        id.to_owned()
    } else {
        let mut s: String = id.chars().take(n).collect();
        s.push('…');
        s
    }
}

fn short_kind(kind: &str) -> &str {
    match kind {
        "container" => "ctr",
        other => other,
    }
}

/// Red below `bad`, yellow below `good`, green from `good` up.
fn level_color(x: f64, bad: f64, good: f64) -> Color {
    if x < bad {
        Color::Red
    } else if x < good {
        Color::Yellow
    } else {
        Color::Green
    }
}

fn job_color(state: &str) -> Color {
    match state {
        "verified" | "done" => Color::Green,
        "failed" => Color::Red,
        "running" | "executing" | "verifying" | "placed" => Color::Yellow,
        "cancelled" => Color::DarkGray,
        _ => Color::Gray,
    }
}

fn harvest_color(state: &str) -> Color {
    match state {
        "harvesting" => Color::Green,
        "eligible" => Color::Cyan,
        "throttled" => Color::Yellow,
        "suspended" | "ineligible" => Color::Red,
        _ => Color::Gray,
    }
}

fn proposal_color(state: &str) -> Color {
    match state {
        "active" | "pending" => Color::Yellow,
        "succeeded" | "queued" | "executed" => Color::Green,
        "defeated" | "vetoed" | "expired" => Color::Red,
        _ => Color::Gray,
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::tui::app::Msg;
    use crate::tui::fixture;

    /// A three-node monitor: node-0 answered with the fixture, node-1 never
    /// answered (connection refused), node-2 was not polled yet.
    fn app() -> App {
        let mut app = App::new(
            vec!["node-0".into(), "node-1".into(), "node-2".into()],
            fixture::NOW_MS,
        );
        app.update(Msg::Status {
            node: 0,
            at_ms: fixture::NOW_MS,
            result: Ok(Box::new(fixture::snapshot())),
        });
        app.update(Msg::Status {
            node: 1,
            at_ms: fixture::NOW_MS,
            result: Err(
                "GET http://127.0.0.1:40101/v1/status: Connection refused (os error 111)".into(),
            ),
        });
        app
    }

    fn render(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        terminal
    }

    fn press(app: &mut App, code: KeyCode) {
        app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    #[test]
    fn node_80x24() {
        let mut app = app();
        insta::assert_snapshot!(render(&mut app, 80, 24).backend());
    }

    #[test]
    fn node_120x40() {
        let mut app = app();
        insta::assert_snapshot!(render(&mut app, 120, 40).backend());
    }

    #[test]
    fn down_node_80x24() {
        let mut app = app();
        press(&mut app, KeyCode::Char('2'));
        insta::assert_snapshot!(render(&mut app, 80, 24).backend());
    }

    #[test]
    fn stale_node_keeps_its_last_status_80x24() {
        let mut app = app();
        app.update(Msg::Tick {
            now_ms: fixture::NOW_MS + 75_000,
        });
        app.update(Msg::Status {
            node: 0,
            at_ms: fixture::NOW_MS + 75_000,
            result: Err("no answer within 2s".into()),
        });
        insta::assert_snapshot!(render(&mut app, 80, 24).backend());
    }

    #[test]
    fn help_80x24() {
        let mut app = app();
        press(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!(render(&mut app, 80, 24).backend());
    }

    #[test]
    fn scrolled_jobs_keep_the_selection_visible_80x24() {
        let mut app = app();
        press(&mut app, KeyCode::End);
        let terminal = render(&mut app, 80, 24);
        let screen = terminal.backend().to_string();
        let last = fixture::snapshot().jobs.last().unwrap().id.clone();
        assert!(screen.contains(&last[..8]), "{screen}");
        // The selected job's detail is in the pane's bottom border.
        assert!(
            screen.contains(&format!("{last}: done on node-0")),
            "{screen}"
        );
    }

    #[test]
    fn too_small_a_terminal_says_so() {
        let mut app = app();
        let terminal = render(&mut app, 40, 10);
        let screen = terminal.backend().to_string();
        assert!(screen.contains("terminal too small"), "{screen}");
    }

    #[test]
    fn hostile_numbers_do_not_panic() {
        let mut app = App::new(vec!["x".into()], 0);
        let mut s = fixture::snapshot();
        s.harvest.cpu_share = f64::NAN;
        s.harvest.battery_pct = Some(f64::INFINITY);
        s.harvest.temperature_c = Some(-400.0);
        s.harvest.other_cpu_pct = Some(1e300);
        s.harvest.user_idle_s = Some(f64::NEG_INFINITY);
        s.peers[0].load = -3.0;
        s.peers[1].reputation = f64::NAN;
        s.mix.pps = f64::NAN;
        s.mix.latency_p99_ms = f64::INFINITY;
        s.mix.pps_history = vec![u64::MAX, 0, u64::MAX];
        s.jobs[0].submitted_ms = u64::MAX;
        s.node.uptime_s = u64::MAX;
        app.update(Msg::Status {
            node: 0,
            at_ms: 0,
            result: Ok(Box::new(s)),
        });
        for (w, h) in [(80, 24), (120, 40), (60, 20), (200, 60)] {
            render(&mut app, w, h);
        }
    }

    #[test]
    fn formats() {
        assert_eq!(human(999), "999");
        assert_eq!(human(12_345), "12.3k");
        assert_eq!(human(4_500_000), "4.5M");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(187), "3m07s");
        assert_eq!(duration(3_725), "1h02m");
        assert_eq!(duration(273_600), "3d04h");
        assert_eq!(short_id("abcdef", 4), "abcd…");
        assert_eq!(short_id("abc", 4), "abc");
        assert_eq!(percent(f64::NAN), "0%");
        assert_eq!(millis(131.5), "132ms");
    }
}
