#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rsgrpc_fuzz_checks::frame_decoder(data);
});
