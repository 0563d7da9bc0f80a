//! A client record read back from client-db's database file: never panics;
//! a record that decodes re-encodes to one that decodes the same.

#![no_main]

use client_db::store::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(record) = decode(data) {
        assert_eq!(decode(&encode(&record)), Some(record));
    }
});
