//! Hello and Bye announcements as a listener sees them: parsed, then put
//! through the repeat and ordering filter (MessageID, AppSequence).
#![no_main]
use camfleet::discovery::hello::SequenceTracker;
use camfleet::discovery::message::{self, MessageKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut t = SequenceTracker::default();
    // The same bytes twice: the second is a repeat.
    for _ in 0..2 {
        if let Ok(m) = message::parse(data) {
            let endpoint = match &m.kind {
                MessageKind::Hello(h) => h.endpoint.clone(),
                MessageKind::Bye { endpoint } => endpoint.clone(),
                _ => String::new(),
            };
            let _ = t.accept(&endpoint, m.message_id.as_deref(), m.app_sequence);
        }
    }
});
