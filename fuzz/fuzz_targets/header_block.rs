#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rsgrpc_fuzz_checks::header_block(data);
});
