//! Live progress of background work (discovery runs, adoptions), for the
//! SSE stream the pages subscribe to. One watch channel per run: readers
//! always see the latest state, slow readers skip intermediate ones, and a
//! finished run's channel is kept until the next runs push it out.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// `discovering`, `adopting`, `done`, `failed`.
    pub phase: String,
    pub done: u64,
    pub total: u64,
    pub found: u64,
    pub message: String,
    pub finished: bool,
}

const KEEP: usize = 256;

#[derive(Default)]
pub struct ProgressHub {
    map: Mutex<HashMap<i32, watch::Sender<Progress>>>,
}

impl ProgressHub {
    /// Start (or restart) tracking run `id`.
    pub fn begin(&self, id: i32, p: Progress) -> Reporter {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= KEEP {
            // Drop finished runs first; running ones stay watched.
            map.retain(|_, tx| !tx.borrow().finished);
        }
        let tx = map
            .entry(id)
            .or_insert_with(|| watch::channel(Progress::default()).0)
            .clone();
        tx.send_replace(p);
        Reporter { tx }
    }

    pub fn subscribe(&self, id: i32) -> Option<watch::Receiver<Progress>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|tx| tx.subscribe())
    }

    /// How many runs have work in progress in this process.
    pub fn running_count(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|tx| !tx.borrow().finished)
            .count()
    }

    /// Whether run `id` has work in progress in this process.
    pub fn running(&self, id: i32) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|tx| !tx.borrow().finished)
    }
}

/// The writing side, held by the task doing the work.
#[derive(Clone)]
pub struct Reporter {
    tx: watch::Sender<Progress>,
}

impl Reporter {
    pub fn update(&self, f: impl FnOnce(&mut Progress)) {
        self.tx.send_modify(f);
    }

    pub fn finish(&self, phase: &str, message: String) {
        self.tx.send_modify(|p| {
            p.phase = phase.into();
            p.message = message;
            p.finished = true;
        });
    }

    /// A reporter nobody listens to (CLI runs).
    pub fn detached() -> Self {
        Reporter {
            tx: watch::channel(Progress::default()).0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_see_the_latest_state_and_the_end() {
        let hub = ProgressHub::default();
        let r = hub.begin(1, Progress::default());
        let rx = hub.subscribe(1).unwrap();
        r.update(|p| p.found = 3);
        assert!(hub.running(1));
        r.finish("done", "3 found".into());
        let p = rx.borrow().clone();
        assert_eq!((p.found, p.finished, p.phase.as_str()), (3, true, "done"));
        assert!(!hub.running(1) && hub.subscribe(2).is_none());
    }
}
