//! The agent's event stream: RecordIO framing cut into arbitrary chunks, then each record read
//! as a Mesos v1 executor event. Neither may panic, and a record is never longer than the
//! decoder's bound.
#![no_main]

use hoist_mesos::recordio::RecordDecoder;
use hoist_mesos::wire::Event;
use libfuzzer_sys::fuzz_target;

const MAX_RECORD: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so the fuzzer explores every way a record's
    // length prefix and payload can be split across reads.
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    let mut decoder = RecordDecoder::new(MAX_RECORD);
    for piece in rest.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => {
                    assert!(record.len() <= MAX_RECORD);
                    let _ = Event::from_slice(&record);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
});
