//! The ranked table: every row of the file, most anomalous first, drawn one screenful at a
//! time (the list may hold millions of rows); the selection follows its row, not its index.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table};
use ratatui::Frame;

use super::{block, Look};
use crate::triage::Mark;
use crate::ui::app::App;
use crate::ui::text::{thousands, truncate, width};

/// Widest a data column may get.
const MAX_COLUMN: usize = 18;

/// The symbol and style of a mark; symbols keep marks readable without colour.
pub fn mark_symbol(mark: Option<Mark>, look: &Look) -> (&'static str, Style) {
    match mark {
        Some(Mark::Anomaly) => ("!", look.theme.anomaly),
        Some(Mark::Normal) => ("✓", look.theme.normal),
        Some(Mark::Unsure) => ("?", look.theme.unsure),
        None => ("", look.theme.text),
    }
}

/// Draws the ranked table into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let (Some(shown), Some(data)) = (app.table.shown(), &app.data) else {
        return;
    };
    let scoring = &shown.scoring;
    let ago = app.now.saturating_duration_since(shown.at).as_secs();
    let flagged = app.table.flagged_count();
    let side_by_side = app.runs.len() > 1;
    let ranked_by = match side_by_side {
        true => format!("{} {}", scoring.detector, score_name(scoring.members)),
        false => score_name(scoring.members),
    };
    // Side by side, the agreement comes right after what ranks, where narrow terminals
    // still show it.
    let mut title = vec![Span::styled(format!(" Ranked by {ranked_by} "), t.title)];
    if let Some(a) = &app.table.agreement {
        let rho = if a.spearman.is_finite() {
            format!("{:.2}", a.spearman)
        } else {
            "–".into()
        };
        title.push(Span::styled(
            format!(
                "· both flag {}/{} · Spearman {rho} ",
                thousands(a.both_flagged),
                thousands(a.flagged)
            ),
            t.accent,
        ));
    } else if side_by_side {
        title.push(Span::styled("· waiting for the other detector ", t.muted));
    }
    title.push(Span::styled(
        format!(
            "· epoch {} · rescored {} ago · flagged {} ({:.1} %) ",
            scoring.epoch,
            elapsed(ago),
            thousands(flagged),
            app.table.contamination * 100.0
        ),
        t.title,
    ));
    if app.table.frozen {
        title.push(Span::styled(
            " FROZEN ",
            t.warning.add_modifier(Modifier::REVERSED),
        ));
    }
    let mut bottom = Vec::new();
    if let (Some(m), Some(truth)) = (&app.table.metrics, data.truth.as_ref()) {
        bottom.push(Span::styled(
            format!(
                " P {:.3} R {:.3} F1 {:.3} AUROC {:.3} ",
                m.precision, m.recall, m.f1, m.auroc
            ),
            t.accent,
        ));
        bottom.push(Span::styled(
            format!("(anomaly = {}) ", truncate(&truth.positive, 16)),
            t.muted,
        ));
    }
    // A sampled file's table holds its sample and its top: say how many the file has.
    let in_file = match scoring.file {
        Some(_) => format!(" of {} in the file", thousands(scoring.file_rows())),
        None => String::new(),
    };
    bottom.push(Span::styled(
        format!(
            " {} {}/{} rows{in_file} · {} marked ",
            app.table.filter.name(),
            thousands(app.table.visible.len()),
            thousands(scoring.len()),
            thousands(app.marks.len())
        ),
        t.muted,
    ));
    let outer = block(Line::from(title), t).title_bottom(Line::from(bottom));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);

    let page = inner.height.saturating_sub(1) as usize;
    app.table.page.set(page.max(1));
    let selected_index = app.table.selected.and_then(|r| app.table.visible_index(r));
    let mut offset = app
        .table
        .offset
        .get()
        .min(app.table.visible.len().saturating_sub(page));
    if let Some(i) = selected_index {
        if i < offset {
            offset = i;
        } else if i >= offset + page {
            offset = i + 1 - page;
        }
    }
    app.table.offset.set(offset);
    let window = &app.table.visible
        [offset.min(app.table.visible.len())..(offset + page).min(app.table.visible.len())];

    let table = &data.loaded.table;
    let label_col = table.labels.as_ref();
    // Fixed columns: marker, rank, row, score, mark, label.
    let n = scoring.len();
    let rank_w = thousands(n).len().max(4);
    let row_w = table
        .rows
        .last()
        .map_or(3, |r| r.number.to_string().len())
        .max(3);
    // Side by side: the other detector's rank of each row, beside this one's.
    let other = app.table.other();
    let other_w = rank_w.max(5);
    let mut header = vec![Cell::from(""), Cell::from(format!("{:>rank_w$}", "rank"))];
    let mut widths = vec![Constraint::Length(1), Constraint::Length(rank_w as u16)];
    let mut used: usize = 1 + rank_w + row_w + 10 + 2 + 5;
    if let Some(other) = other {
        header.push(Cell::from(format!(
            "{:>other_w$}",
            other.detector().title()
        )));
        widths.push(Constraint::Length(other_w as u16));
        used += other_w + 1;
    }
    header.extend([
        Cell::from(format!("{:>row_w$}", "row")),
        Cell::from(format!("{:>10}", "score")),
        Cell::from("mk"),
    ]);
    widths.extend([
        Constraint::Length(row_w as u16),
        Constraint::Length(10),
        Constraint::Length(2),
    ]);
    let label_w = label_col.map(|l| {
        let longest = data.label_names.iter().map(|s| width(s)).max().unwrap_or(0);
        longest.max(l.column.len()).clamp(5, 14)
    });
    if let (Some(l), Some(w)) = (label_col, label_w) {
        header.push(Cell::from(
            truncate(&crate::text::visible(&l.column), w).into_owned(),
        ));
        widths.push(Constraint::Length(w as u16));
        used += w + 1;
    }
    // Data columns while they fit, each as wide as its name or its widest value on screen.
    let mut data_cols = Vec::new();
    for column in &data.columns {
        let values_w = window
            .iter()
            .map(|&r| width(&app.cell(r as usize, column)))
            .max()
            .unwrap_or(0);
        let w = width(&column.name).max(values_w).clamp(3, MAX_COLUMN);
        if used + w > inner.width as usize {
            break;
        }
        used += w + 1;
        header.push(Cell::from(truncate(&column.name, w).into_owned()));
        widths.push(Constraint::Length(w as u16));
        data_cols.push((column, w));
    }
    let rows: Vec<Row> =
        window
            .iter()
            .map(|&r| {
                let row = r as usize;
                let is_selected = app.table.selected == Some(r);
                let flagged_row = app.table.is_flagged(row);
                let (symbol, mark_style) = mark_symbol(app.mark_of(row), look);
                let mut cells = vec![
                    Cell::from(if is_selected {
                        "▶"
                    } else if flagged_row {
                        "●"
                    } else {
                        " "
                    })
                    .style(if flagged_row { t.flagged } else { t.text }),
                    Cell::from(format!("{:>rank_w$}", scoring.rank(row))),
                ];
                if let Some(other) = other {
                    let rank = other.scoring.rank(row);
                    let also_flagged = rank <= flagged;
                    cells.push(
                        Cell::from(format!("{rank:>other_w$}")).style(if also_flagged {
                            t.flagged
                        } else {
                            t.muted
                        }),
                    );
                }
                cells.extend([
                    Cell::from(format!("{:>row_w$}", table.rows[row].number)),
                    Cell::from(format!("{:>10}", score(scoring.scores[row])))
                        .style(if flagged_row { t.flagged } else { t.text }),
                    Cell::from(symbol).style(mark_style),
                ]);
                if let (Some(l), Some(w)) = (label_col, label_w) {
                    let name = &data.label_names[l.values[row] as usize];
                    cells.push(Cell::from(truncate(name, w).into_owned()));
                }
                for (column, w) in &data_cols {
                    cells.push(Cell::from(
                        truncate(&app.cell(row, column), *w).into_owned(),
                    ));
                }
                let row_widget = Row::new(cells);
                if is_selected {
                    row_widget.style(t.selected)
                } else {
                    row_widget
                }
            })
            .collect();
    let widget = Table::new(rows, widths)
        .header(Row::new(header).style(t.title))
        .column_spacing(1);
    frame.render_widget(widget, inner);
}

/// What the table ranks by: a DAGMM's score is its energy standardised over the fitted
/// rows; an ensemble's is the mean of its members' (README, "Scores").
pub fn score_name(members: usize) -> String {
    match members {
        0 | 1 => "score".into(),
        n => format!("score of {n} models"),
    }
}

/// A score with the significant digits that matter in a narrow column.
pub fn score(e: f64) -> String {
    crate::ui::text::number(e, 4)
}

/// `75` → `1m15s`.
pub fn elapsed(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
    }
}
