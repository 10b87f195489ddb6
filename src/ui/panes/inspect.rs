//! The inspect view: why is this row flagged? Its original values, its score and
//! percentile, the detector's per-row detail (DAGMM: memberships γ̂ and z; EGBAD: the two
//! parts of its score), and why it is flagged: each column's contribution to its score
//! relative to a typical row, or (tab) the detector's error per feature.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::table::{mark_symbol, score};
use super::{bar, overlay, Look};
use crate::text::visible;
use crate::ui::app::App;
use crate::ui::text::{number, thousands, truncate, width};

/// Draws the inspect overlay for the selected row into `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let (Some(row), Some(shown), Some(data)) = (app.table.selected, app.table.shown(), &app.data)
    else {
        return;
    };
    let row = row as usize;
    let scoring = &shown.scoring;
    let table = &data.loaded.table;
    let number_in_file = table.rows[row].number;
    let title = format!(
        " Row {number_in_file} · rank {} of {} · j/k scroll · ] next row · esc back ",
        thousands(scoring.rank(row)),
        thousands(scoring.file_rows())
    );
    let inner = overlay(frame, area, title, t);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(inner);
    let scroll = app.inspect_scroll;

    // Left: the original values.
    let name_w = data
        .columns
        .iter()
        .map(|c| width(&c.name))
        .max()
        .unwrap_or(4)
        .clamp(4, 24);
    let mut values = Vec::new();
    if let Some(labels) = &table.labels {
        values.push(Line::from(vec![
            Span::styled(
                format!("{:<name_w$} ", truncate(&visible(&labels.column), name_w)),
                t.muted,
            ),
            Span::styled(
                data.label_names[labels.values[row] as usize].clone(),
                t.accent,
            ),
        ]));
    }
    for column in &data.columns {
        values.push(Line::from(vec![
            Span::styled(
                format!("{:<name_w$} ", truncate(&column.name, name_w)),
                t.muted,
            ),
            Span::styled(app.cell(row, column), t.text),
        ]));
    }
    let values_block = Block::default()
        .borders(Borders::RIGHT)
        .border_style(t.border)
        .title(Line::styled("Values", t.title));
    let shown_values: Vec<Line> = values.into_iter().skip(scroll).collect();
    frame.render_widget(Paragraph::new(shown_values).block(values_block), left);

    // Right: scores, memberships, z, reconstruction error.
    let right = Rect {
        x: right.x + 1,
        width: right.width.saturating_sub(1),
        ..right
    };
    let w = right.width as usize;
    let e = scoring.scores[row];
    let (symbol, mark_style) = mark_symbol(app.mark_of(row), look);
    let mark_text = app
        .mark_of(row)
        .map_or("none (a n u to mark)", |m| m.name());
    let mut lines = vec![
        Line::from(vec![
            Span::styled("score   ", t.muted),
            Span::styled(
                score(e),
                if app.table.is_flagged(row) {
                    t.flagged
                } else {
                    t.text
                },
            ),
            Span::styled(
                format!(
                    "  percentile {:.2} · {}",
                    scoring.percentile(row),
                    if app.table.is_flagged(row) {
                        "flagged"
                    } else {
                        "not flagged"
                    }
                ),
                t.muted,
            ),
        ]),
        Line::from(vec![
            Span::styled("mark    ", t.muted),
            Span::styled(format!("{symbol} "), mark_style),
            Span::styled(mark_text, mark_style),
        ]),
    ];
    let bar_w = w.saturating_sub(14).min(30);
    for group in &scoring.detail.groups {
        lines.push(Line::styled(
            member_title(&group.title, scoring.members),
            t.title,
        ));
        let values = group.of(row);
        if group.shares {
            for (k, (name, &v)) in group.names.iter().zip(values).enumerate() {
                lines.push(Line::from(vec![
                    Span::styled(format!(" {name:<4}"), t.text),
                    Span::styled(
                        format!("{:<bar_w$}", bar(v, bar_w)),
                        t.series[k % t.series.len()],
                    ),
                    Span::styled(format!(" {v:.3}"), t.text),
                ]));
            }
        } else {
            // name value pairs, wrapped to the pane's width.
            let mut line: Vec<Span> = Vec::new();
            let mut used = 0;
            for (name, &v) in group.names.iter().zip(values) {
                let item = format!(" {name} {}", number(v, 4));
                let item_w = width(&item) + 1;
                if used + item_w > w && !line.is_empty() {
                    lines.push(Line::from(std::mem::take(&mut line)));
                    used = 0;
                }
                used += item_w;
                line.push(Span::styled(format!(" {name} "), t.muted));
                line.push(Span::styled(number(v, 4), t.text));
            }
            if !line.is_empty() {
                lines.push(Line::from(line));
            }
        }
    }
    if app.inspect_reconstruction {
        reconstruction_lines(&mut lines, app, row, w, look);
    } else {
        contribution_lines(&mut lines, app, row, w, look);
    }
    frame.render_widget(Paragraph::new(lines), right);
}

/// A section title, naming the member it describes when there are several.
fn member_title(what: &str, members: usize) -> String {
    if members > 1 {
        format!("{what} (model {members} of {members})")
    } else {
        what.to_string()
    }
}

/// "Why flagged" as the detector's error on each encoded feature, largest first.
fn reconstruction_lines(lines: &mut Vec<Line>, app: &App, row: usize, w: usize, look: &Look) {
    let t = &look.theme;
    let (Some(shown), Some(data)) = (app.table.shown(), &app.data) else {
        return;
    };
    let scoring = &shown.scoring;
    let scroll = app.inspect_scroll;
    lines.push(Line::styled(
        format!(
            "why flagged: {} by feature (tab: by column)",
            scoring.detector.feature_error_title()
        ),
        t.title,
    ));
    let errors = scoring.feature_errors(row);
    let total: f64 = errors.iter().map(|&v| f64::from(v)).sum();
    let mut order: Vec<usize> = (0..errors.len()).collect();
    order.sort_by(|&a, &b| errors[b].total_cmp(&errors[a]));
    let top = errors
        .iter()
        .cloned()
        .fold(0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let feature_w = (w / 2).clamp(8, 28);
    let err_bar_w = w.saturating_sub(feature_w + 18).max(4);
    for &f in order.iter().skip(scroll) {
        let name = data
            .loaded
            .feature_names
            .get(f)
            .map_or("?".into(), |n| visible(n).into_owned());
        let share = if total > 0.0 {
            100.0 * f64::from(errors[f]) / total
        } else {
            0.0
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {:<feature_w$} ", truncate(&name, feature_w)),
                t.text,
            ),
            Span::styled(
                format!("{:<err_bar_w$}", bar(f64::from(errors[f] / top), err_bar_w)),
                t.flagged,
            ),
            Span::styled(
                format!(" {:>8} {share:>3.0}%", number(f64::from(errors[f]), 3)),
                t.muted,
            ),
        ]));
    }
}

/// "Why flagged" as each column's contribution to the row's score relative to the typical
/// row (they add up to the difference of the two scores), largest first.
fn contribution_lines(lines: &mut Vec<Line>, app: &App, row: usize, w: usize, look: &Look) {
    let t = &look.theme;
    let (Some(shown), Some(data)) = (app.table.shown(), &app.data) else {
        return;
    };
    let scoring = &shown.scoring;
    let columns = &data.loaded.feature_columns;
    let ranges: Vec<_> = columns.iter().map(|(_, r)| r.clone()).collect();
    let Some(why) = scoring.why(row, &ranges) else {
        return;
    };
    // While a member trains, the explanation is of its own raw score.
    let what = if scoring.explains_ensemble {
        " score "
    } else {
        " raw score "
    };
    lines.push(Line::styled(
        "why flagged: by column (tab: reconstruction)",
        t.title,
    ));
    lines.push(Line::from(vec![
        Span::styled(what, t.muted),
        Span::styled(number(why.score, 4), t.text),
        Span::styled(" = typical ", t.muted),
        Span::styled(number(why.reference_score, 4), t.text),
        Span::styled(" + Σ below", t.muted),
    ]));
    let shares = why.shares();
    let top = why
        .contributions
        .iter()
        .fold(0f64, |m, c| m.max(c.abs()))
        .max(f64::MIN_POSITIVE);
    let column_w = (w / 2).clamp(8, 28);
    let bar_w = w.saturating_sub(column_w + 20).max(4);
    for &g in why.ranked().iter().skip(app.inspect_scroll) {
        let c = why.contributions[g];
        let name = visible(&columns[g].0).into_owned();
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {:<column_w$} ", truncate(&name, column_w)),
                t.text,
            ),
            Span::styled(
                format!("{:<bar_w$}", bar(c.abs() / top, bar_w)),
                if c >= 0.0 { t.flagged } else { t.muted },
            ),
            Span::styled(
                format!(" {:>9} {:>4.0}%", number(c, 3), 100.0 * shares[g]),
                t.muted,
            ),
        ]));
    }
}
