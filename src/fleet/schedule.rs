//! Job schedules with crontab's meaning, evaluated by the `cron` crate.
//!
//! Crontab (Vixie cron, `man 5 crontab`) and the `cron` crate disagree in
//! three places, and a schedule must mean what an operator who writes
//! crontabs expects:
//! - weekdays: crontab numbers 0–7 from Sunday (0 and 7 both Sunday), the
//!   crate 1–7 from Sunday;
//! - day of month and day of week: when both are restricted (neither
//!   starts with `*`), crontab runs on days matching *either*; the crate
//!   requires both;
//! - `@daily` and the other nicknames.
//!
//! So each of the five fields is read here into an explicit list of values
//! (ranges, steps, names, checked against the field's range with an error
//! that names it), and the crate only evaluates lists. An OR of day of
//! month and day of week becomes two crate schedules whose run times are
//! merged.

use chrono::{DateTime, TimeZone};

/// A parsed job schedule.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    /// One schedule, or two whose union is meant (day of month OR day of
    /// week).
    parts: Vec<cron::Schedule>,
}

struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    /// Names for values from `lo` (months from 1, weekdays from 0).
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    lo: 1,
    hi: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    lo: 1,
    hi: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const WEEKDAY: Field = Field {
    name: "day of week",
    lo: 0,
    hi: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.lo + i as u32);
        }
        let n: u32 = s.parse().map_err(|_| {
            if self.names.is_empty() {
                format!("{}: {s:?} is not a number", self.name)
            } else {
                format!(
                    "{}: {s:?} is not a number or a name ({})",
                    self.name,
                    self.names.join(", ")
                )
            }
        })?;
        if n < self.lo || n > self.hi {
            return Err(format!(
                "{}: {n} is out of range {}–{}",
                self.name, self.lo, self.hi
            ));
        }
        Ok(n)
    }

    /// Every value the field names, sorted, without repeats.
    fn expand(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        for item in text.split(',') {
            if item.is_empty() {
                return Err(format!("{}: empty item in {text:?}", self.name));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("{}: step {s:?} is not a whole number ≥ 1", self.name)
                    })?;
                    (r, step)
                }
                None => (item, 1),
            };
            let (a, b) = if range == "*" {
                (self.lo, self.hi)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!(
                        "{}: range {range:?} runs backwards (write it as two ranges)",
                        self.name
                    ));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `5/15`: from 5 to the end, every 15 (Vixie cron).
                (a, if step > 1 { self.hi } else { a })
            };
            out.extend((a..=b).step_by(step as usize));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

fn list(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl JobSchedule {
    /// Parse a schedule: crontab's five fields (minute hour day-of-month
    /// month day-of-week, with crontab's meaning) or a nickname (`@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
    /// `@hourly`). Six or seven fields are the `cron` crate's own syntax
    /// (seconds first, weekdays 1–7 from Sunday, day fields ANDed), kept
    /// for schedules written that way.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let e = expr.trim();
        let e = match e.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            "@reboot" => return Err("@reboot: camfleet schedules by time only".into()),
            s if s.starts_with('@') => {
                return Err(format!(
                    "{e:?}: unknown nickname (@yearly, @monthly, @weekly, @daily, @hourly)"
                ));
            }
            _ => e,
        };
        let f: Vec<&str> = e.split_whitespace().collect();
        match f.len() {
            5 => {}
            6 | 7 => {
                let s = e
                    .parse::<cron::Schedule>()
                    .map_err(|err| format!("{e:?}: {err}"))?;
                return Ok(Self { parts: vec![s] });
            }
            n => {
                return Err(format!(
                    "{n} fields: use 5 (minute hour day-of-month month day-of-week)"
                ));
            }
        }
        let minutes = list(&MINUTE.expand(f[0])?);
        let hours = list(&HOUR.expand(f[1])?);
        let days = list(&DAY.expand(f[2])?);
        let months = list(&MONTH.expand(f[3])?);
        // Crontab's 0 and 7 are Sunday; the crate's Sunday is 1.
        let mut weekdays: Vec<u32> = WEEKDAY
            .expand(f[4])?
            .into_iter()
            .map(|d| d % 7 + 1)
            .collect();
        weekdays.sort_unstable();
        weekdays.dedup();
        let weekdays = list(&weekdays);
        let build = |dom: &str, dow: &str| -> Result<cron::Schedule, String> {
            format!("0 {minutes} {hours} {dom} {months} {dow}")
                .parse::<cron::Schedule>()
                .map_err(|err| format!("{e:?}: {err}"))
        };
        let dom_star = f[2].starts_with('*');
        let dow_star = f[4].starts_with('*');
        let parts = if dom_star || dow_star {
            // One of them is unrestricted (or both): the days are what the
            // other says, as the crate's AND reads it too.
            vec![build(&days, &weekdays)?]
        } else {
            // Both restricted: crontab runs on either.
            vec![build(&days, "*")?, build("*", &weekdays)?]
        };
        Ok(Self { parts })
    }

    /// Run times after `t` (exclusive), in order, without repeats.
    pub fn after<'a, Z: TimeZone + 'a>(
        &'a self,
        t: &DateTime<Z>,
    ) -> impl Iterator<Item = DateTime<Z>> + 'a {
        let mut iters: Vec<_> = self.parts.iter().map(|s| s.after(t).peekable()).collect();
        let mut last: Option<DateTime<Z>> = None;
        std::iter::from_fn(move || {
            loop {
                // The earliest head among the parts.
                let i = (0..iters.len())
                    .filter_map(|i| iters[i].peek().map(|t| (i, t.clone())))
                    .min_by(|a, b| a.1.cmp(&b.1))?
                    .0;
                let next = iters[i].next()?;
                if last.as_ref() == Some(&next) {
                    continue;
                }
                last = Some(next.clone());
                return Some(next);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn next(expr: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        JobSchedule::parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .after(&at(from))
            .take(n)
            .collect()
    }

    fn times(list: &[&str]) -> Vec<DateTime<Utc>> {
        list.iter().map(|s| at(s)).collect()
    }

    // Known next-run tables. 2026-12-01 is a Tuesday; worked out by hand
    // from crontab(5), not from this code.

    #[test]
    fn zero_to_seven_is_every_day() {
        assert_eq!(
            next("0 12 * * 0-7", "2026-12-05T13:00:00Z", 3),
            times(&[
                "2026-12-06T12:00:00Z",
                "2026-12-07T12:00:00Z",
                "2026-12-08T12:00:00Z"
            ])
        );
    }

    #[test]
    fn a_step_over_weekdays_one_to_seven_is_mon_wed_fri_sun() {
        assert_eq!(
            next("0 0 * * 1-7/2", "2026-11-30T12:00:00Z", 5),
            times(&[
                "2026-12-02T00:00:00Z", // Wednesday
                "2026-12-04T00:00:00Z", // Friday
                "2026-12-06T00:00:00Z", // Sunday (7)
                "2026-12-07T00:00:00Z", // Monday
                "2026-12-09T00:00:00Z",
            ])
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // The 1st and 15th, and every Friday.
        assert_eq!(
            next("0 0 1,15 * 5", "2026-11-30T12:00:00Z", 6),
            times(&[
                "2026-12-01T00:00:00Z", // Tuesday, the 1st
                "2026-12-04T00:00:00Z", // Friday
                "2026-12-11T00:00:00Z", // Friday
                "2026-12-15T00:00:00Z", // Tuesday, the 15th
                "2026-12-18T00:00:00Z", // Friday
                "2026-12-25T00:00:00Z", // Friday
            ])
        );
        // A Friday that is also the 1st runs once. 2027-01-01 is a Friday.
        assert_eq!(
            next("0 0 1 * fri", "2026-12-31T12:00:00Z", 2),
            times(&["2027-01-01T00:00:00Z", "2027-01-08T00:00:00Z"])
        );
        // With `*` in one of them, the other alone decides.
        assert_eq!(
            next("0 0 * * 5", "2026-11-30T12:00:00Z", 1),
            times(&["2026-12-04T00:00:00Z"])
        );
        assert_eq!(
            next("0 0 15 * *", "2026-11-30T12:00:00Z", 1),
            times(&["2026-12-15T00:00:00Z"])
        );
        // `*/2` counts as `*` (Vixie cron): odd days that are Fridays.
        assert_eq!(
            next("0 0 */2 * 5", "2026-11-30T12:00:00Z", 2),
            times(&["2026-12-11T00:00:00Z", "2026-12-25T00:00:00Z"])
        );
    }

    #[test]
    fn nicknames() {
        assert_eq!(
            next("@daily", "2026-12-05T13:00:00Z", 2),
            times(&["2026-12-06T00:00:00Z", "2026-12-07T00:00:00Z"])
        );
        assert_eq!(
            next("@hourly", "2026-12-05T13:20:00Z", 1),
            times(&["2026-12-05T14:00:00Z"])
        );
        assert_eq!(
            next("@weekly", "2026-12-02T00:00:00Z", 1),
            times(&["2026-12-06T00:00:00Z"])
        );
        assert_eq!(
            next("@monthly", "2026-12-02T00:00:00Z", 1),
            times(&["2027-01-01T00:00:00Z"])
        );
        assert_eq!(
            next("@yearly", "2026-12-02T00:00:00Z", 1),
            times(&["2027-01-01T00:00:00Z"])
        );
        assert!(JobSchedule::parse("@reboot").is_err());
        assert!(JobSchedule::parse("@fortnightly").is_err());
    }

    #[test]
    fn names_ranges_and_steps() {
        assert_eq!(
            next("*/20 9-10 * * mon-fri", "2026-12-04T10:30:00Z", 4),
            times(&[
                "2026-12-04T10:40:00Z",
                "2026-12-07T09:00:00Z", // Monday
                "2026-12-07T09:20:00Z",
                "2026-12-07T09:40:00Z",
            ])
        );
        assert_eq!(
            next("5/20 0 1 jan,jul *", "2026-12-04T00:00:00Z", 3),
            times(&[
                "2027-01-01T00:05:00Z",
                "2027-01-01T00:25:00Z",
                "2027-01-01T00:45:00Z",
            ])
        );
    }

    #[test]
    fn errors_name_the_field_and_its_range() {
        let e = JobSchedule::parse("61 * * * *").unwrap_err();
        assert_eq!(e, "minute: 61 is out of range 0–59");
        let e = JobSchedule::parse("0 24 * * *").unwrap_err();
        assert_eq!(e, "hour: 24 is out of range 0–23");
        let e = JobSchedule::parse("0 0 0 * *").unwrap_err();
        assert_eq!(e, "day of month: 0 is out of range 1–31");
        let e = JobSchedule::parse("0 0 * 13 *").unwrap_err();
        assert_eq!(e, "month: 13 is out of range 1–12");
        let e = JobSchedule::parse("0 0 * * 8").unwrap_err();
        assert_eq!(e, "day of week: 8 is out of range 0–7");
        assert!(
            JobSchedule::parse("0 0 * * 5-1")
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            JobSchedule::parse("*/0 * * * *")
                .unwrap_err()
                .contains("step")
        );
        assert!(
            JobSchedule::parse("*/15 * * *")
                .unwrap_err()
                .contains("4 fields")
        );
        assert!(JobSchedule::parse("0 0 * * funday").is_err());
        assert!(JobSchedule::parse("0,,5 * * * *").is_err());
    }
}
