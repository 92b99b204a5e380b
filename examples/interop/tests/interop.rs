//! Every interop case, both client flavours against both server flavours.

#[test]
fn all_cases_between_our_clients_and_servers() {
    let _leaks = rsgrpc_tests::leak::check();
    let mut failures = Vec::new();
    for server_flavour in ["async", "blocking"] {
        let server = interop::server::serve("127.0.0.1:0", server_flavour).unwrap();
        let channel = rsgrpc::Channel::new(&format!("http://{}", server.local_addr())).unwrap();
        for case in interop::CASES {
            let blocking = interop::client::run_blocking(case, &channel);
            let asynchronous =
                futures::executor::block_on(interop::client::run_async(case, &channel));
            for (client_flavour, outcome) in [("blocking", blocking), ("async", asynchronous)] {
                if let Err(why) = outcome {
                    failures.push(format!(
                        "{case} ({client_flavour} client, {server_flavour} server): {why}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
