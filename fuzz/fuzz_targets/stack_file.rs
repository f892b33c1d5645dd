//! The stack-file parser and its validation (`berth apply -f`): arbitrary text never
//! panics, whatever the stack's validation makes of it.
#![no_main]

use berth_model::stack::Stack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(stack) = Stack::from_yaml(text) {
        let _ = stack.validate();
    }
});
