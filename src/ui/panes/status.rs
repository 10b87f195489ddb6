//! The status line: file, shape, model, state, epoch progress, throughput and ETA. Parts
//! are dropped from the least useful end when the terminal is narrow.

use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::Look;
use crate::ui::app::{App, Phase};
use crate::ui::text::{thousands, truncate, width};

/// Draws the status line into `area` (one row).
pub fn draw(frame: &mut Frame, area: Rect, app: &App, look: &Look) {
    let t = &look.theme;
    let (state, state_style) = match &app.phase {
        Phase::Loading => ("… loading", t.accent),
        Phase::Training => ("● training", t.ok),
        Phase::Paused => ("‖ paused", t.warning),
        Phase::Done => ("✓ done", t.ok),
        Phase::Failed(_) => ("✗ error", t.error),
    };
    // (priority, span): lower priority goes first when room runs out.
    let mut parts: Vec<(u8, Span)> = vec![
        (
            9,
            Span::styled(" dagmm-tui ", t.title.add_modifier(Modifier::REVERSED)),
        ),
        (
            8,
            Span::styled(format!(" {}", truncate(&app.config.file, 32)), t.text),
        ),
    ];
    if let Some(data) = &app.data {
        let table = &data.loaded.table;
        parts.push((
            5,
            Span::styled(
                match table.sampled_from {
                    // A file larger than the memory budget: the model trained on a sample;
                    // after training every row is ranked and the table gains the file's top.
                    Some(total) => format!(
                        "  trained on a sample of {} of {} rows × {} features",
                        thousands(table.len() - data.loaded.top_rows),
                        thousands(usize::try_from(total).unwrap_or(usize::MAX)),
                        data.loaded.feature_names.len(),
                    ),
                    None => format!(
                        "  {} rows × {} features",
                        thousands(table.len()),
                        data.loaded.feature_names.len()
                    ),
                },
                t.muted,
            ),
        ));
        let ranking = match app.ranking {
            Some((done, rows)) => Some(format!(
                " · ranking every row {:.0}%",
                100.0 * done as f64 / rows.max(1) as f64
            )),
            None if data.loaded.table_id > 0 => Some(" · every row ranked".into()),
            None => None,
        };
        if let Some(ranking) = ranking {
            parts.push((4, Span::styled(ranking, t.muted)));
        }
        parts.push((2, Span::styled(format!("  {}", data.loaded.model), t.muted)));
    }
    parts.push((
        9,
        Span::styled(
            format!("  {state}"),
            state_style.add_modifier(Modifier::BOLD),
        ),
    ));
    let p = app.progress();
    let (detector, place, detectors) = app.training_detector();
    if detectors > 1 && p.epochs > 0 {
        parts.push((
            8,
            Span::styled(format!("  {detector} {place}/{detectors}"), t.accent),
        ));
    }
    if p.epochs > 0 {
        let within = if p.steps_per_epoch > 0 && app.phase != Phase::Done {
            p.step as f64 / p.steps_per_epoch as f64
        } else {
            0.0
        };
        let fraction = p.fraction(within).min(1.0);
        let shown_epoch = if app.phase == Phase::Done {
            p.epochs_done
        } else {
            (p.epochs_done + 1).min(p.epochs)
        };
        if p.members > 1 {
            parts.push((
                8,
                Span::styled(
                    format!("  member {}/{}", p.member.max(1), p.members),
                    t.text,
                ),
            ));
        }
        parts.push((
            8,
            Span::styled(format!("  epoch {shown_epoch}/{}", p.epochs), t.text),
        ));
        if let Some(kept) = p.diverged_keeping {
            parts.push((
                7,
                Span::styled(
                    format!("  ⚠ diverged, keeping epoch {kept}, scored by L_D"),
                    t.warning,
                ),
            ));
        }
        if !p.by_discriminator.is_empty() && p.diverged_keeping.is_none() {
            parts.push((
                6,
                Span::styled(
                    format!(
                        "  {} of {} scored by L_D",
                        p.by_discriminator.len(),
                        p.members.max(p.member)
                    ),
                    t.muted,
                ),
            ));
        }
        let filled = (fraction * 10.0).round() as usize;
        parts.push((
            4,
            Span::styled(
                format!(" {}{}", "█".repeat(filled), "░".repeat(10 - filled)),
                t.gauge,
            ),
        ));
        parts.push((
            6,
            Span::styled(format!(" {:.0}%", fraction * 100.0), t.text),
        ));
        if p.samples_per_sec > 0.0 {
            parts.push((
                3,
                Span::styled(format!("  {}/s", rate(p.samples_per_sec)), t.muted),
            ));
        }
        let done = p.epochs_before() + p.epochs_done as f64;
        if matches!(app.phase, Phase::Training) && done > 0.0 {
            let per_epoch = p.elapsed_secs / done;
            let total = (p.members.max(1) * p.epochs) as f64;
            let left = per_epoch * (total - done - within).max(0.0);
            parts.push((4, Span::styled(format!("  ETA {}", clock(left)), t.muted)));
        }
    } else if app.phase == Phase::Done {
        parts.push((6, Span::styled("  checkpoint model", t.muted)));
    }
    let mut budget = area.width as usize;
    for drop_below in 0..=9u8 {
        let total: usize = parts
            .iter()
            .filter(|(pr, _)| *pr >= drop_below)
            .map(|(_, s)| width(&s.content))
            .sum();
        if total <= budget {
            parts.retain(|(pr, _)| *pr >= drop_below);
            break;
        }
    }
    let spans: Vec<Span> = parts
        .into_iter()
        .filter_map(|(_, s)| {
            let w = width(&s.content);
            if w <= budget {
                budget -= w;
                Some(s)
            } else {
                None
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `123456.7` → `123k`.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.1}M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.0}k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

/// Seconds as `m:ss` or `h:mm:ss`.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}
