//! babeld's local-interface byte stream as prefixd follows it: cut into
//! lines (at the read boundaries the first byte chooses), then the
//! conversation (greeting, dump, live updates) and its view.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prefixd::babel::{BabelCounters, Conversation, LineBuffer};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    // Small limits, so that the fuzzer reaches them.
    let mut lines = LineBuffer::new(200);
    let mut conversation = Conversation::new(16);
    let mut counters = BabelCounters::default();
    let mut frames = Vec::new();
    for read in stream.chunks(chunk) {
        lines.push(read, &mut frames);
        for frame in frames.drain(..) {
            if conversation.on_frame(frame, &mut counters).is_err() {
                return;
            }
        }
    }
});
