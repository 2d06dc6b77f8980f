//! A job schedule as a user types it: parsed with crontab's meaning, and
//! the next run times computed in a time zone with daylight saving.
#![no_main]
use camfleet::fleet::schedule::JobSchedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 200 {
        return;
    }
    if let Ok(s) = JobSchedule::parse(text) {
        let start = chrono::DateTime::from_timestamp(1_790_000_000, 0)
            .expect("fixed time")
            .with_timezone(&chrono_tz::Europe::Berlin);
        let _ = s.after(&start).take(3).count();
    }
});
