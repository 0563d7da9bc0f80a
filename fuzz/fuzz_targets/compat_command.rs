//! One line of the C control socket: never panics; whatever parses prints
//! back to a line that parses to the same command, and an error is one
//! line.

#![no_main]

use l3roamd_compat::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Command::parse(data) {
        Ok(command) => {
            let printed = command.to_string();
            assert_eq!(
                Command::parse(printed.as_bytes()),
                Ok(command),
                "{data:?} printed as {printed:?}"
            );
        }
        Err(e) => {
            let line = l3roamd_compat::reply::error(&e);
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        }
    }
});
