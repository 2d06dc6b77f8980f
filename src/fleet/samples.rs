//! Health samples over time: raw polls for 48 h, 5-minute rollups after
//! that (kept 400 days), and the series the device page charts.
//!
//! Sizes, for 10,000 devices polled every 60 s: raw is 14.4 M rows a day,
//! so 48 h is ~29 M rows of ~40 bytes; a 5-minute rollup row replaces five
//! raw rows, and a year of rollups is ~1 G rows (~50 GB) — at that size
//! use PostgreSQL, or shorten `ROLLUP_RETENTION`.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::error::Result;

pub const BUCKET_MS: i64 = 5 * 60 * 1000;
pub const RAW_RETENTION_MS: i64 = 48 * 3600 * 1000;
pub const ROLLUP_RETENTION_MS: i64 = 400 * 24 * 3600 * 1000;

/// Summarise raw samples into 5-minute rollups (the two hours before the
/// current bucket, so a missed run is caught up; idempotent) and drop what
/// is past retention. Returns the rollup rows written.
pub async fn rollup(db: &DatabaseConnection, now_ms: i64) -> Result<u64> {
    Ok(rollup_since(db, now_ms, None).await?.0)
}

/// The rollup of a process that runs it again and again: `last_end` is
/// what the previous run returned, and only the buckets since then are
/// read again, with the one before it for the samples of polls that ended
/// after it ran (at most the two hours of [`rollup`]). Reading the whole
/// two hours every five minutes costs what two hours of the fleet's
/// samples are: 720,000 rows a run at 1,000 cameras polled every 10 s,
/// 2.4 M at 10,000 every 30 s, sorted for the `GROUP BY` in SQLite's
/// temporary store, which this build keeps in memory
/// (`SQLITE_TEMP_STORE=2`). Returns (rows written, the end to pass next
/// time).
pub async fn rollup_since(
    db: &DatabaseConnection,
    now_ms: i64,
    last_end: Option<i64>,
) -> Result<(u64, i64)> {
    let end = now_ms - now_ms.rem_euclid(BUCKET_MS);
    let start = match last_end {
        Some(e) if e <= end => (e - BUCKET_MS).max(end - 24 * BUCKET_MS),
        // First run, or the clock went back: the whole catch-up window.
        _ => end - 24 * BUCKET_MS,
    };
    let backend = db.get_database_backend();
    let ok_expr = match backend {
        DbBackend::Postgres => "CASE WHEN ok THEN 1 ELSE 0 END",
        _ => "CASE WHEN ok <> 0 THEN 1 ELSE 0 END",
    };
    let sql = format!(
        "INSERT INTO health_rollups (device_id, bucket_ms, samples, ok_samples, latency_sum_ms, latency_max_ms, drift_min_ms, drift_max_ms) \
         SELECT device_id, (at_ms / {BUCKET_MS}) * {BUCKET_MS}, COUNT(*), SUM({ok_expr}), COALESCE(SUM(latency_ms), 0), COALESCE(MAX(latency_ms), 0), MIN(drift_ms), MAX(drift_ms) \
         FROM health_samples WHERE at_ms >= $1 AND at_ms < $2 \
         GROUP BY device_id, (at_ms / {BUCKET_MS}) * {BUCKET_MS} \
         ON CONFLICT (device_id, bucket_ms) DO UPDATE SET samples = excluded.samples, ok_samples = excluded.ok_samples, \
           latency_sum_ms = excluded.latency_sum_ms, latency_max_ms = excluded.latency_max_ms, \
           drift_min_ms = excluded.drift_min_ms, drift_max_ms = excluded.drift_max_ms"
    );
    let r = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [start.into(), end.into()],
        ))
        .await?;
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "DELETE FROM health_samples WHERE at_ms < $1",
        [(now_ms - RAW_RETENTION_MS).into()],
    ))
    .await?;
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "DELETE FROM health_rollups WHERE bucket_ms < $1",
        [(now_ms - ROLLUP_RETENTION_MS).into()],
    ))
    .await?;
    checkpoint(db).await;
    Ok((r.rows_affected(), end))
}

/// SQLite: copy the write-ahead log into the database and truncate it.
/// SQLite's own checkpoints (every 1,000 pages) cannot reset the log while
/// readers keep snapshots, and a server that polls without pause always
/// has one: in the hour-long soak the log grew from 20 to 30 MiB between
/// resets, and resident memory rose and fell with it (BENCHMARKS.md,
/// "Soak"). Called with the rollup (every 5 minutes); best effort — a busy
/// moment just leaves it for the next. Nothing to do on PostgreSQL.
pub async fn checkpoint(db: &DatabaseConnection) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    if let Err(e) = db
        .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
    {
        tracing::debug!(error = %e, "WAL checkpoint skipped");
    }
}

/// One point of a chart: a time bucket and what happened in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub start_ms: i64,
    pub samples: i64,
    pub ok: i64,
    pub latency_avg_ms: Option<f64>,
    pub drift_avg_ms: Option<f64>,
}

impl Point {
    pub fn availability(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.ok as f64 / self.samples as f64)
    }
}

/// A device's last `span_ms`, in buckets of `bucket_ms`, from raw samples
/// (`from_raw`) or from rollups. Buckets without samples are absent.
pub async fn series(
    db: &DatabaseConnection,
    device_id: i32,
    now_ms: i64,
    span_ms: i64,
    bucket_ms: i64,
    from_raw: bool,
) -> Result<Vec<Point>> {
    let backend = db.get_database_backend();
    let since = now_ms - span_ms;
    let sql = if from_raw {
        let ok_expr = match backend {
            DbBackend::Postgres => "CASE WHEN ok THEN 1 ELSE 0 END",
            _ => "CASE WHEN ok <> 0 THEN 1 ELSE 0 END",
        };
        format!(
            "SELECT (at_ms / {bucket_ms}) * {bucket_ms} AS b, COUNT(*) AS n, SUM({ok_expr}) AS ok, \
             CAST(AVG(CASE WHEN {ok_expr} = 1 THEN latency_ms END) AS DOUBLE PRECISION) AS lat, \
             CAST(AVG(drift_ms) AS DOUBLE PRECISION) AS drift \
             FROM health_samples WHERE device_id = $1 AND at_ms >= $2 GROUP BY b ORDER BY b"
        )
    } else {
        format!(
            "SELECT (bucket_ms / {bucket_ms}) * {bucket_ms} AS b, SUM(samples) AS n, SUM(ok_samples) AS ok, \
             CAST(SUM(latency_sum_ms) * 1.0 / NULLIF(SUM(ok_samples), 0) AS DOUBLE PRECISION) AS lat, \
             CAST(AVG((drift_min_ms + drift_max_ms) / 2.0) AS DOUBLE PRECISION) AS drift \
             FROM health_rollups WHERE device_id = $1 AND bucket_ms >= $2 GROUP BY b ORDER BY b"
        )
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [device_id.into(), since.into()],
        ))
        .await?;
    // Averages are cast to DOUBLE PRECISION: PostgreSQL's AVG and SUM of
    // bigint are NUMERIC, which does not decode as f64.
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let num = |col: &str| -> Option<f64> {
            r.try_get::<Option<f64>>("", col)
                .ok()
                .flatten()
                .or_else(|| {
                    r.try_get::<Option<i64>>("", col)
                        .ok()
                        .flatten()
                        .map(|v| v as f64)
                })
        };
        let int = |col: &str| -> i64 {
            r.try_get::<Option<i64>>("", col)
                .ok()
                .flatten()
                .or_else(|| num(col).map(|v| v as i64))
                .unwrap_or(0)
        };
        out.push(Point {
            start_ms: int("b"),
            samples: int("n"),
            ok: int("ok"),
            latency_avg_ms: num("lat"),
            drift_avg_ms: num("drift"),
        });
    }
    Ok(out)
}

/// One point of a chart: where it is (x in 0..=1), its value (None: a
/// gap) and what a pointer over it says.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    pub x: f64,
    pub y: Option<f64>,
    pub label: String,
}

/// A small line chart as SVG (server-rendered; no script): a time axis
/// with `ticks` (x, text), the line broken at gaps, and each value with
/// its label on hover (the SVG `title` of a point).
pub fn svg_chart(
    title: &str,
    unit: &str,
    values: &[ChartPoint],
    fixed_max: Option<f64>,
    ticks: &[(f64, String)],
) -> String {
    const W: f64 = 480.0;
    const H: f64 = 132.0;
    const PAD: f64 = 24.0;
    const BOTTOM: f64 = 36.0;
    let max = fixed_max
        .or_else(|| {
            values
                .iter()
                .filter_map(|p| p.y)
                .map(f64::abs)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        })
        .filter(|m| *m > 0.0)
        .unwrap_or(1.0);
    let min = values.iter().filter_map(|p| p.y).fold(0.0_f64, f64::min);
    let span = (max - min).max(f64::EPSILON);
    let px = |x: f64| PAD + x.clamp(0.0, 1.0) * (W - 2.0 * PAD);
    let py = |y: f64| H - BOTTOM - ((y - min) / span) * (H - PAD - BOTTOM);
    let mut path = String::new();
    let mut dots = String::new();
    let mut pen_down = false;
    for p in values {
        match p.y {
            Some(y) => {
                let (x, y) = (px(p.x), py(y));
                path.push_str(&format!(
                    "{}{x:.1},{y:.1} ",
                    if pen_down { "L" } else { "M" }
                ));
                pen_down = true;
                dots.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" class=\"chart-dot\"><title>{}</title></circle>",
                    crate::xml::escape(&p.label)
                ));
            }
            None => pen_down = false,
        }
    }
    let mut axis = String::new();
    for (x, text) in ticks {
        let x = px(*x);
        axis.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{y1}\" x2=\"{x:.1}\" y2=\"{y2}\" class=\"chart-base\"/><text x=\"{x:.1}\" y=\"{yt}\" text-anchor=\"middle\" class=\"chart-axis\">{}</text>",
            crate::xml::escape(text),
            y1 = H - BOTTOM,
            y2 = H - BOTTOM + 4.0,
            yt = H - BOTTOM + 16.0,
        ));
    }
    format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\">\
<text x=\"{PAD}\" y=\"14\" class=\"chart-title\">{t}</text>\
<text x=\"{x2}\" y=\"14\" text-anchor=\"end\" class=\"chart-axis\">max {max:.0} {u}</text>\
<line x1=\"{PAD}\" y1=\"{yb}\" x2=\"{x2}\" y2=\"{yb}\" class=\"chart-base\"/>{axis}\
<path d=\"{path}\" class=\"chart-line\" fill=\"none\"/>{dots}</svg>",
        t = crate::xml::escape(title),
        u = crate::xml::escape(unit),
        x2 = W - PAD,
        yb = H - BOTTOM,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_break_at_gaps_and_escape_their_labels() {
        let pt = |x: f64, y: Option<f64>| ChartPoint {
            x,
            y,
            label: format!("at {x}: <{y:?}>"),
        };
        let svg = svg_chart(
            "a<b",
            "ms",
            &[pt(0.0, Some(1.0)), pt(0.5, None), pt(1.0, Some(3.0))],
            None,
            &[(0.5, "12:00".into())],
        );
        assert!(svg.contains("a&lt;b"));
        let path = svg
            .split("<path d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(path.matches('M').count(), 2, "{svg}");
        assert!(!path.contains('L'), "no line across the gap");
        // Each value says what it is on hover; the axis has its tick.
        assert_eq!(svg.matches("<title>").count(), 2, "{svg}");
        assert!(
            svg.contains("<title>at 0: &lt;Some(1.0)&gt;</title>"),
            "{svg}"
        );
        assert!(svg.contains(">12:00</text>"), "{svg}");
    }
}
