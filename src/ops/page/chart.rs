//! Stacked bar charts drawn as inline SVG on the server: they show with scripts off, print,
//! and need nothing fetched.
//!
//! One `<path>` per series, each bar a vertical stroke as wide as the bar (a few bytes of
//! path data, not an element of its own),
//! and one transparent `<rect>` with a `<title>` per non-empty bar, so a pointer over a bar
//! tells its numbers. Colours come from the page's style sheet by series class.

use std::fmt::Write;

use super::html::Esc;

/// One stacked series: its name (legend), its CSS class (colour) and a value per bar.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<u64>,
}

const W: f64 = 600.0;
const H: f64 = 170.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 6.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

/// The smallest of 1, 2, 5 × 10^k at or above `v` (an axis top a reader takes in at once).
fn nice_ceiling(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= v || top == u64::MAX {
                return top;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// `1.5` → "1.5", `2.0` → "2": short path data.
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// Writes a `<figure>` with the chart and its legend. `ticks` are the labels under the
/// bars at the given indices; `tip(i)` is the text of bar `i`'s tooltip.
pub fn stacked_bars(
    o: &mut String,
    id: &str,
    caption: &str,
    series: &[Series<'_>],
    bars: usize,
    ticks: &[(usize, String)],
    tip: impl Fn(usize) -> String,
) {
    let totals: Vec<u64> = (0..bars)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add)
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let top = nice_ceiling(max.max(1));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / bars.max(1) as f64;
    let bar_w = (slot - 1.0).max(0.5);
    let y_of = |v: f64| TOP + plot_h - v / top as f64 * plot_h;

    let _ = write!(
        o,
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-t\">\
         <title id=\"{id}-t\">{}</title>",
        Esc(caption),
        Esc(caption)
    );
    // Axes and grid: 0, half (when it is a whole number), top.
    let mut lines = vec![0, top];
    if top.is_multiple_of(2) {
        lines.insert(1, top / 2);
    }
    for v in lines {
        let label = v.to_string();
        let y = n(y_of(v as f64));
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>\
             <text class=\"ay\" x=\"{}\" y=\"{y}\">{label}</text>",
            n(W - RIGHT),
            n(LEFT - 4.0)
        );
    }
    for (i, label) in ticks {
        let x = n(LEFT + *i as f64 * slot + bar_w / 2.0);
        // The last label ends at its bar, inside the chart.
        let class = if i + 1 == bars { "ax e" } else { "ax" };
        let _ = write!(
            o,
            "<text class=\"{class}\" x=\"{x}\" y=\"{}\">{}</text>",
            n(H - 5.0),
            Esc(label)
        );
    }
    if max == 0 {
        let _ = write!(
            o,
            "<text class=\"empty\" x=\"{}\" y=\"{}\">nothing in this hour</text>",
            n(LEFT + plot_w / 2.0),
            n(TOP + plot_h / 2.0)
        );
    }
    // One path per series, stacked in the order given.
    let mut base = vec![0u64; bars];
    for s in series {
        let mut d = String::new();
        for (i, b) in base.iter_mut().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let y0 = y_of(*b as f64);
            *b = b.saturating_add(v);
            let y1 = y_of(*b as f64);
            let x = LEFT + i as f64 * slot + bar_w / 2.0;
            let _ = write!(d, "M{} {}V{}", n(x), n(y0), n(y1));
        }
        if !d.is_empty() {
            let _ = write!(
                o,
                "<path class=\"{}\" stroke-width=\"{}\" d=\"{d}\"><title>{}</title></path>",
                s.class,
                n(bar_w),
                Esc(s.name)
            );
        }
    }
    for (i, &t) in totals.iter().enumerate() {
        if t == 0 {
            continue;
        }
        let x = LEFT + i as f64 * slot;
        let _ = write!(
            o,
            "<rect class=\"hit\" x=\"{}\" y=\"{TOP}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
            n(x),
            n(slot),
            n(plot_h),
            Esc(&tip(i))
        );
    }
    o.push_str("</svg><ul class=\"legend\">");
    for s in series {
        let total = s.values.iter().copied().fold(0u64, u64::saturating_add);
        let _ = write!(
            o,
            "<li><i class=\"key {}\"></i>{} <b>{total}</b></li>",
            s.class,
            Esc(s.name)
        );
    }
    o.push_str("</ul></figure>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(101), 200);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }

    #[test]
    fn bars_stack_and_empty_series_draw_nothing() {
        let mut o = String::new();
        let series = [
            Series {
                name: "ACK",
                class: "s-ack",
                values: vec![0, 4, 11],
            },
            Series {
                name: "NAK <bad>",
                class: "s-nak",
                values: vec![0, 1, 0],
            },
            Series {
                name: "DUH",
                class: "s-duh",
                values: vec![0, 0, 0],
            },
        ];
        stacked_bars(
            &mut o,
            "c",
            "Frames",
            &series,
            3,
            &[(0, "12:00".into())],
            |i| format!("bar {i}"),
        );
        assert!(o.starts_with("<figure class=\"chart\" id=\"c\">"));
        assert!(o.contains("<svg class=\"chart\""));
        assert_eq!(o.matches("<path ").count(), 2, "{o}");
        assert_eq!(o.matches("<rect class=\"hit\"").count(), 2);
        assert!(o.contains("<title>bar 2</title>"));
        assert!(o.contains("NAK &lt;bad&gt; <b>1</b>"));
        assert!(
            o.contains(">20</text>"),
            "axis top is 20 for a max of 11: {o}"
        );
        assert!(!o.contains("nothing in this hour"));
        let mut e = String::new();
        stacked_bars(&mut e, "e", "Events", &series[2..], 3, &[], |_| {
            String::new()
        });
        assert!(e.contains("nothing in this hour"));
        assert!(!e.contains("<path"));
    }
}
