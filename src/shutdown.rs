//! Cooperative shutdown for long-running parts: each `run(self, shutdown)`
//! returns when the signal fires, having finished or abandoned its work.

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown is requested (or the trigger is dropped).
    pub async fn wait(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }
}

/// A signal that never fires (one-off runs: a job, a CLI command, a test).
pub fn never() -> Shutdown {
    static NEVER: std::sync::OnceLock<watch::Sender<bool>> = std::sync::OnceLock::new();
    Shutdown(NEVER.get_or_init(|| watch::channel(false).0).subscribe())
}
