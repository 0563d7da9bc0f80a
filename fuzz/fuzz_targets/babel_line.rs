//! One line of babeld's local interface: never panics; whatever parses
//! prints back to a line that parses to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prefixd::babel::parse_line;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(line)) = parse_line(text) {
        let printed = line.to_string();
        assert_eq!(
            parse_line(&printed),
            Ok(Some(line)),
            "{text:?} printed as {printed:?}"
        );
    }
});
