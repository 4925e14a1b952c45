//! Charts as server-rendered SVG (no JavaScript, nothing fetched): bars per hour with two
//! series, a horizontal funnel and a line over time. Every number is also in a `<title>` so a
//! pointer shows it, and each chart has an accessible label.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};

use crate::store::{Funnel, HourCount};

const W: f64 = 720.0;
const H: f64 = 180.0;
const LEFT: f64 = 36.0;
const BOTTOM: f64 = 22.0;

fn scale(max: i64) -> f64 {
    (max.max(1)) as f64
}

/// Attempts and reached calls per hour, `from` being the first hour (labels in `tz`).
pub fn hourly(from: DateTime<Utc>, hours: &[HourCount], tz: Tz) -> Markup {
    let max = scale(hours.iter().map(|h| h.attempts).max().unwrap_or(0));
    let n = hours.len().max(1) as f64;
    let slot = (W - LEFT) / n;
    let bar = (slot / 2.0 - 1.0).max(1.0);
    let plot = H - BOTTOM;
    html! {
        svg.chart viewBox={"0 0 " (W) " " (H)} role="img"
            aria-label="Attempts and answers per hour, last 24 hours" {
            (axis(max, plot))
            @for (i, h) in hours.iter().enumerate() {
                @let x = LEFT + i as f64 * slot;
                @let ha = h.attempts as f64 / max * (plot - 8.0);
                @let hr = h.reached as f64 / max * (plot - 8.0);
                @let hour = (from + chrono::Duration::hours(i as i64)).with_timezone(&tz);
                g {
                    title { (hour.format("%H:00")) ": " (h.attempts) " attempts, " (h.reached) " answered" }
                    rect.attempts x=(x + 1.0) y=(plot - ha) width=(bar) height=(ha) {}
                    rect.reached x=(x + 1.0 + bar) y=(plot - hr) width=(bar) height=(hr) {}
                }
                @if i % 3 == 0 {
                    text.tick x=(x + slot / 2.0) y=(H - 6.0) text-anchor="middle" { (hour.format("%H")) }
                }
            }
        }
        p.legend { span.key.attempts {} " attempts " span.key.reached {} " answered by a person (hours in " (tz.name()) ")" }
    }
}

/// Contacts → called → reached → with an outcome.
pub fn funnel(f: &Funnel) -> Markup {
    let steps = [
        ("contacts", f.contacts),
        ("called", f.called),
        ("reached a person", f.reached),
        ("with an outcome", f.with_outcome),
    ];
    let max = scale(f.contacts);
    let row = 34.0;
    let label = 150.0;
    html! {
        svg.chart viewBox={"0 0 " (W) " " (row * 4.0 + 4.0)} role="img" aria-label="Outcome funnel" {
            @for (i, (name, v)) in steps.iter().enumerate() {
                @let y = 2.0 + i as f64 * row;
                @let w = (*v as f64 / max * (W - label - 60.0)).max(1.0);
                g {
                    title { (name) ": " (v) }
                    text.label x="0" y=(y + row / 2.0 + 4.0) { (name) }
                    rect.funnel x=(label) y=(y + 4.0) width=(w) height=(row - 10.0) {}
                    text.value x=(label + w + 6.0) y=(y + row / 2.0 + 4.0) { (v) }
                }
            }
        }
    }
}

/// Calls in flight at each sample instant.
pub fn in_flight(points: &[(DateTime<Utc>, i64)], tz: Tz) -> Markup {
    let max = scale(points.iter().map(|p| p.1).max().unwrap_or(0));
    let plot = H - BOTTOM;
    let n = (points.len().max(2) - 1) as f64;
    let x = |i: usize| LEFT + i as f64 / n * (W - LEFT - 24.0);
    let y = |v: i64| plot - v as f64 / max * (plot - 8.0);
    let path: String = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(i),
                y(*v)
            )
        })
        .collect();
    html! {
        svg.chart viewBox={"0 0 " (W) " " (H)} role="img" aria-label="Calls in flight, last 24 hours" {
            (axis(max, plot))
            path.line d=(path) {}
            @for (i, (t, v)) in points.iter().enumerate() {
                circle.point cx=(x(i)) cy=(y(*v)) r="2.5" { title { (t.with_timezone(&tz).format("%H:%M")) ": " (v) " in flight" } }
                @if i % 8 == 0 {
                    text.tick x=(x(i)) y=(H - 6.0) text-anchor="middle" { (t.with_timezone(&tz).format("%H:%M")) }
                }
            }
        }
    }
}

fn axis(max: f64, plot: f64) -> Markup {
    html! {
        line.axis x1=(LEFT) y1=(plot) x2=(W) y2=(plot) {}
        line.axis x1=(LEFT) y1="4" x2=(LEFT) y2=(plot) {}
        text.tick x=(LEFT - 4.0) y="12" text-anchor="end" { (max) }
        text.tick x=(LEFT - 4.0) y=(plot) text-anchor="end" { "0" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_to_the_busiest_hour_and_numbers_are_titled() {
        let from = DateTime::from_timestamp(1_800_000_000, 0).expect("t");
        let hours = [
            HourCount {
                attempts: 4,
                reached: 1,
            },
            HourCount {
                attempts: 2,
                reached: 2,
            },
        ];
        let svg = hourly(from, &hours, chrono_tz::UTC).into_string();
        assert!(svg.contains("4 attempts, 1 answered"), "{svg}");
        assert!(svg.contains("2 attempts, 2 answered"), "{svg}");
        // the busiest hour's bar fills the plot height
        assert!(
            svg.contains(&format!("height=\"{}\"", H - BOTTOM - 8.0)),
            "{svg}"
        );
    }

    #[test]
    fn funnel_and_line_render_every_value() {
        let f = Funnel {
            contacts: 10,
            called: 8,
            reached: 5,
            with_outcome: 3,
        };
        let svg = funnel(&f).into_string();
        for v in [
            "contacts: 10",
            "called: 8",
            "reached a person: 5",
            "with an outcome: 3",
        ] {
            assert!(svg.contains(v), "{v} in {svg}");
        }
        let t = DateTime::from_timestamp(1_800_000_000, 0).expect("t");
        let line = in_flight(&[(t, 0), (t, 3)], chrono_tz::UTC).into_string();
        assert!(
            line.contains("3 in flight") && line.contains("d=\"M"),
            "{line}"
        );
    }
}
