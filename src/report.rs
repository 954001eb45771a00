//! Periodic reports for the station's management and its customers: alarms per day by
//! category, the busiest accounts, and supervision failures over time, as CSV tables a
//! spreadsheet opens and SVG charts a document embeds.
//!
//! Aggregation is pure over normalized events ([`Aggregator`]), so it is tested without a
//! journal; `tocsin report` feeds it from the journal and writes the files. Charts are
//! drawn with `plotters`' SVG backend built without font support: SVG text is written as
//! `<text>` elements and laid out by the viewer, so no system font library is needed.

use std::collections::{BTreeMap, BTreeSet};

use plotters::prelude::*;
use time::{Duration, UtcDateTime};

use crate::protocol::codes::EventClass;
use crate::receiver::event::Event;
use crate::receiver::supervision::{
    CODE_COMM_FAIL, CODE_COMM_RESTORE, CODE_PATH_FAIL, CODE_PATH_RESTORE,
};

/// Periods filled in with zeros at most; a wider span lists only the periods seen.
const MAX_FILLED_PERIODS: usize = 2000;
/// Accounts drawn in the top-accounts chart (the CSV has them all).
const CHART_ACCOUNTS: usize = 15;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot draw the chart {chart}: {reason}")]
    Render { chart: &'static str, reason: String },
}

/// The period of the supervision table: hours for short spans, days otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// Hours up to three days, so a weekend incident is readable; days beyond.
    pub fn for_span(since_micros: i64, until_micros: i64) -> Bucket {
        if until_micros.saturating_sub(since_micros) <= 72 * 3_600 * 1_000_000 {
            Bucket::Hour
        } else {
            Bucket::Day
        }
    }

    /// The period label of an RFC 3339 time: `2024-03-01` or `2024-03-01T12:00Z`.
    fn label(self, rfc3339: &str) -> Option<String> {
        match self {
            Bucket::Day => rfc3339.get(..10).map(str::to_string),
            Bucket::Hour => rfc3339.get(..13).map(|h| format!("{h}:00Z")),
        }
    }
}

/// Totals of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRow {
    pub account: String,
    pub events: u64,
    pub alarms: u64,
    pub troubles: u64,
    /// `path_fail` and `comm_fail` events.
    pub supervision_failures: u64,
    pub last_event: String,
}

/// Supervision events of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisionCounts {
    pub path_fail: u64,
    pub comm_fail: u64,
    pub path_restore: u64,
    pub comm_restore: u64,
}

/// The aggregated report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Every event counted.
    pub events: u64,
    /// Categories with at least one alarm, sorted: the columns of the alarms table.
    pub categories: Vec<String>,
    /// (day, alarms by category), days in order, gaps filled with zeros.
    pub alarms_per_day: Vec<(String, BTreeMap<String, u64>)>,
    /// Accounts by events, most first (ties by account).
    pub top_accounts: Vec<AccountRow>,
    pub bucket: Bucket,
    /// (period, counts), periods in order, gaps filled with zeros.
    pub supervision: Vec<(String, SupervisionCounts)>,
}

/// Counts events into a [`Report`].
#[derive(Debug)]
pub struct Aggregator {
    range: Option<(i64, i64)>,
    bucket: Bucket,
    events: u64,
    alarms: BTreeMap<String, BTreeMap<String, u64>>,
    accounts: BTreeMap<String, AccountRow>,
    supervision: BTreeMap<String, SupervisionCounts>,
}

impl Aggregator {
    /// `range`: the report's span (µs, `until` exclusive), used to fill empty periods.
    pub fn new(range: Option<(i64, i64)>, bucket: Bucket) -> Aggregator {
        Aggregator {
            range,
            bucket,
            events: 0,
            alarms: BTreeMap::new(),
            accounts: BTreeMap::new(),
            supervision: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, e: &Event) {
        self.events = self.events.saturating_add(1);
        let row = self
            .accounts
            .entry(e.account.to_string())
            .or_insert_with(|| AccountRow {
                account: e.account.to_string(),
                ..AccountRow::default()
            });
        row.events = row.events.saturating_add(1);
        if e.received_at.as_str() > row.last_event.as_str() {
            row.last_event = e.received_at.to_string();
        }
        match e.class {
            EventClass::Alarm => {
                row.alarms = row.alarms.saturating_add(1);
                if let Some(day) = Bucket::Day.label(&e.received_at) {
                    let n = self
                        .alarms
                        .entry(day)
                        .or_default()
                        .entry(e.category.as_str().to_string())
                        .or_insert(0);
                    *n = n.saturating_add(1);
                }
            }
            EventClass::Trouble => row.troubles = row.troubles.saturating_add(1),
            EventClass::Supervision => {
                let failure = e.code == CODE_PATH_FAIL || e.code == CODE_COMM_FAIL;
                if failure {
                    row.supervision_failures = row.supervision_failures.saturating_add(1);
                }
                if let Some(p) = self.bucket.label(&e.received_at) {
                    let c = self.supervision.entry(p).or_default();
                    let n = match e.code.as_str() {
                        CODE_PATH_FAIL => &mut c.path_fail,
                        CODE_COMM_FAIL => &mut c.comm_fail,
                        CODE_PATH_RESTORE => &mut c.path_restore,
                        CODE_COMM_RESTORE => &mut c.comm_restore,
                        _ => return,
                    };
                    *n = n.saturating_add(1);
                }
            }
            _ => {}
        }
    }

    pub fn finish(self) -> Report {
        let categories: BTreeSet<String> = self
            .alarms
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        let mut alarms = self.alarms;
        let mut supervision = self.supervision;
        if let Some((since, until)) = self.range {
            for day in periods(since, until, Bucket::Day) {
                alarms.entry(day).or_default();
            }
            for p in periods(since, until, self.bucket) {
                supervision.entry(p).or_default();
            }
        }
        let mut top: Vec<AccountRow> = self.accounts.into_values().collect();
        top.sort_by(|a, b| b.events.cmp(&a.events).then(a.account.cmp(&b.account)));
        Report {
            events: self.events,
            categories: categories.into_iter().collect(),
            alarms_per_day: alarms.into_iter().collect(),
            top_accounts: top,
            bucket: self.bucket,
            supervision: supervision.into_iter().collect(),
        }
    }
}

/// Every period label from `since` to `until` (exclusive), or none when there would be
/// more than [`MAX_FILLED_PERIODS`].
fn periods(since: i64, until: i64, bucket: Bucket) -> Vec<String> {
    let step = match bucket {
        Bucket::Hour => Duration::hours(1),
        Bucket::Day => Duration::days(1),
    };
    let (Ok(start), Ok(end)) = (
        UtcDateTime::from_unix_timestamp_nanos(i128::from(since) * 1000),
        UtcDateTime::from_unix_timestamp_nanos(i128::from(until) * 1000),
    ) else {
        return Vec::new();
    };
    let Ok(start) = (match bucket {
        Bucket::Hour => start.replace_minute(0).and_then(|t| t.replace_second(0)),
        Bucket::Day => Ok(UtcDateTime::new(start.date(), time::Time::MIDNIGHT)),
    }) else {
        return Vec::new();
    };
    let start = start.replace_nanosecond(0).unwrap_or(start);
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        if out.len() >= MAX_FILLED_PERIODS {
            return Vec::new();
        }
        if let Some(l) = bucket.label(&crate::receiver::event::rfc3339(t)) {
            out.push(l);
        }
        match t.checked_add(step) {
            Some(n) => t = n,
            None => break,
        }
    }
    out
}

/// One CSV cell: RFC 4180 quoting, and a leading quote for cells a spreadsheet would run
/// as formulas (account numbers and texts come from the network).
pub fn csv_field(f: &str) -> String {
    let risky = f.starts_with(['=', '+', '-', '@']);
    if f.contains([',', '"', '\n', '\r']) || risky {
        let inner = f.replace('"', "\"\"");
        if risky {
            format!("\"'{inner}\"")
        } else {
            format!("\"{inner}\"")
        }
    } else {
        f.to_string()
    }
}

fn csv_line(cells: &[String]) -> String {
    let mut s = cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    s
}

impl Report {
    /// `date,<category>…,total`.
    pub fn alarms_csv(&self) -> String {
        let mut header = vec!["date".to_string()];
        header.extend(self.categories.iter().cloned());
        header.push("total".into());
        let mut out = csv_line(&header);
        for (day, by_cat) in &self.alarms_per_day {
            let mut row = vec![day.clone()];
            let mut total = 0u64;
            for c in &self.categories {
                let n = by_cat.get(c).copied().unwrap_or(0);
                total = total.saturating_add(n);
                row.push(n.to_string());
            }
            row.push(total.to_string());
            out.push_str(&csv_line(&row));
        }
        out
    }

    /// `rank,account,events,alarms,troubles,supervision_failures,last_event`.
    pub fn top_accounts_csv(&self) -> String {
        let mut out =
            String::from("rank,account,events,alarms,troubles,supervision_failures,last_event\n");
        for (i, a) in self.top_accounts.iter().enumerate() {
            out.push_str(&csv_line(&[
                (i + 1).to_string(),
                a.account.clone(),
                a.events.to_string(),
                a.alarms.to_string(),
                a.troubles.to_string(),
                a.supervision_failures.to_string(),
                a.last_event.clone(),
            ]));
        }
        out
    }

    /// `period,path_fail,comm_fail,path_restore,comm_restore`.
    pub fn supervision_csv(&self) -> String {
        let mut out = String::from("period,path_fail,comm_fail,path_restore,comm_restore\n");
        for (p, c) in &self.supervision {
            out.push_str(&csv_line(&[
                p.clone(),
                c.path_fail.to_string(),
                c.comm_fail.to_string(),
                c.path_restore.to_string(),
                c.comm_restore.to_string(),
            ]));
        }
        out
    }

    /// Stacked bars: alarms per day, one colour per category.
    pub fn alarms_svg(&self) -> Result<String, ReportError> {
        let labels: Vec<String> = self.alarms_per_day.iter().map(|(d, _)| d.clone()).collect();
        let series: Vec<(String, Vec<u64>)> = self
            .categories
            .iter()
            .map(|c| {
                let v = self
                    .alarms_per_day
                    .iter()
                    .map(|(_, m)| m.get(c).copied().unwrap_or(0))
                    .collect();
                (c.clone(), v)
            })
            .collect();
        stacked_bars(
            "alarms_per_day",
            "Alarms per day by category",
            "alarms",
            &labels,
            &series,
        )
    }

    /// Bars: events of the busiest accounts.
    pub fn top_accounts_svg(&self) -> Result<String, ReportError> {
        let top = self.top_accounts.iter().take(CHART_ACCOUNTS);
        let labels: Vec<String> = top.clone().map(|a| a.account.clone()).collect();
        let series = vec![
            (
                "alarms".to_string(),
                top.clone().map(|a| a.alarms).collect::<Vec<_>>(),
            ),
            (
                "other events".to_string(),
                top.map(|a| a.events.saturating_sub(a.alarms)).collect(),
            ),
        ];
        stacked_bars(
            "top_accounts",
            "Top accounts by events",
            "events",
            &labels,
            &series,
        )
    }

    /// Stacked bars: path and communication failures per period.
    pub fn supervision_svg(&self) -> Result<String, ReportError> {
        let labels: Vec<String> = self.supervision.iter().map(|(p, _)| p.clone()).collect();
        let series = vec![
            (
                CODE_PATH_FAIL.to_string(),
                self.supervision.iter().map(|(_, c)| c.path_fail).collect(),
            ),
            (
                CODE_COMM_FAIL.to_string(),
                self.supervision.iter().map(|(_, c)| c.comm_fail).collect(),
            ),
        ];
        let title = match self.bucket {
            Bucket::Hour => "Supervision failures per hour",
            Bucket::Day => "Supervision failures per day",
        };
        stacked_bars("supervision_failures", title, "failures", &labels, &series)
    }
}

/// Draws stacked bars, one bar per label, one colour per series, with a legend.
fn stacked_bars(
    chart_name: &'static str,
    title: &str,
    y_desc: &str,
    labels: &[String],
    series: &[(String, Vec<u64>)],
) -> Result<String, ReportError> {
    let err = |e: &dyn std::fmt::Display| ReportError::Render {
        chart: chart_name,
        reason: e.to_string(),
    };
    let n = labels.len().max(1);
    let mut totals = vec![0u64; n];
    for (_, values) in series {
        for (t, v) in totals.iter_mut().zip(values) {
            *t = t.saturating_add(*v);
        }
    }
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = (160 + 40 * n as u32).clamp(640, 2400);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let label_of = |x: &f64| -> String {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(70)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..(max * 1.15))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels((n + 1).min(25))
            .x_label_formatter(&label_of)
            .x_label_style(("sans-serif", 11))
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(&e))?;
        let mut base = vec![0f64; n];
        for (k, (name, values)) in series.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            let bars: Vec<Rectangle<(f64, f64)>> = values
                .iter()
                .zip(base.iter_mut())
                .enumerate()
                .filter(|(_, (v, _))| **v > 0)
                .map(|(i, (v, b))| {
                    let x = i as f64;
                    let top = *b + *v as f64;
                    let r = Rectangle::new([(x - 0.35, *b), (x + 0.35, top)], color.filled());
                    *b = top;
                    r
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{Category, Qualifier};
    use time::macros::utc_datetime;

    fn ev(
        account: &str,
        at: UtcDateTime,
        class: EventClass,
        category: Category,
        code: &str,
    ) -> Event {
        Event::internal(
            "id".into(),
            at,
            "r",
            account,
            code,
            (Qualifier::New, class, category),
            "t".into(),
        )
    }

    fn sample() -> Report {
        let d1 = utc_datetime!(2024-03-01 10:00);
        let d3 = utc_datetime!(2024-03-03 23:59);
        let since = crate::station::micros(utc_datetime!(2024-03-01 00:00));
        let until = crate::station::micros(utc_datetime!(2024-03-04 00:00));
        let mut a = Aggregator::new(Some((since, until)), Bucket::Day);
        a.add(&ev("1", d1, EventClass::Alarm, Category::Burglary, "BA"));
        a.add(&ev("1", d1, EventClass::Alarm, Category::Fire, "FA"));
        a.add(&ev("2", d3, EventClass::Alarm, Category::Burglary, "BA"));
        a.add(&ev("2", d3, EventClass::Trouble, Category::Power, "AT"));
        a.add(&ev("2", d3, EventClass::Restore, Category::Burglary, "BR"));
        a.add(&ev(
            "3",
            d1,
            EventClass::Supervision,
            Category::Communication,
            CODE_COMM_FAIL,
        ));
        a.add(&ev(
            "3",
            d3,
            EventClass::Supervision,
            Category::Communication,
            CODE_COMM_RESTORE,
        ));
        a.add(&ev(
            "=1",
            d1,
            EventClass::Supervision,
            Category::Communication,
            CODE_PATH_FAIL,
        ));
        a.finish()
    }

    #[test]
    fn alarms_per_day_fills_gaps() {
        let r = sample();
        assert_eq!(r.events, 8);
        assert_eq!(r.categories, ["burglary", "fire"]);
        assert_eq!(
            r.alarms_csv(),
            "date,burglary,fire,total\n2024-03-01,1,1,2\n2024-03-02,0,0,0\n2024-03-03,1,0,1\n"
        );
    }

    #[test]
    fn top_accounts_ranked() {
        let r = sample();
        let csv = r.top_accounts_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "rank,account,events,alarms,troubles,supervision_failures,last_event"
        );
        assert_eq!(lines[1], "1,2,3,1,1,0,2024-03-03T23:59:00.000Z");
        assert_eq!(lines[2], "2,1,2,2,0,0,2024-03-01T10:00:00.000Z");
        assert_eq!(lines[3], "3,3,2,0,0,1,2024-03-03T23:59:00.000Z");
        // A formula-looking account is defused.
        assert_eq!(lines[4], "4,\"'=1\",1,0,0,1,2024-03-01T10:00:00.000Z");
    }

    #[test]
    fn supervision_per_period() {
        let r = sample();
        assert_eq!(
            r.supervision_csv(),
            "period,path_fail,comm_fail,path_restore,comm_restore\n\
             2024-03-01,1,1,0,0\n2024-03-02,0,0,0,0\n2024-03-03,0,0,0,1\n"
        );
        assert_eq!(Bucket::for_span(0, 3_600_000_000), Bucket::Hour);
        assert_eq!(Bucket::for_span(0, 4 * 86_400_000_000), Bucket::Day);
        assert_eq!(
            periods(0, 2 * 3_600_000_000 + 1, Bucket::Hour),
            [
                "1970-01-01T00:00Z",
                "1970-01-01T01:00Z",
                "1970-01-01T02:00Z"
            ]
        );
        // A span too wide to fill lists only what was seen.
        assert!(periods(0, i64::MAX / 2, Bucket::Hour).is_empty());
    }

    #[test]
    fn charts_are_svg_with_text() {
        let r = sample();
        for svg in [r.alarms_svg(), r.top_accounts_svg(), r.supervision_svg()] {
            let svg = svg.unwrap();
            assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
            assert!(svg.trim_end().ends_with("</svg>"));
            // Labels are SVG text, no font library involved.
            assert!(svg.contains("<text"), "{svg}");
        }
        assert!(r.alarms_svg().unwrap().contains("2024-03-02"));
        assert!(r.alarms_svg().unwrap().contains("burglary"));
        // An empty report still draws.
        let empty = Aggregator::new(None, Bucket::Day).finish();
        assert!(empty.alarms_svg().unwrap().contains("<svg"));
        assert_eq!(empty.alarms_csv(), "date,total\n");
    }
}
