#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // The code generator turns prost-build's panics into errors with catch_unwind, as
        // its documentation promises; libFuzzer's hook would abort on them before they are
        // caught. A panic that escapes the generator still aborts: libfuzzer-sys checks
        // the fuzz target's result.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| {
        rsgrpc_fuzz_checks::codegen(data);
    }
);
