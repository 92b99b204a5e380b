//! Sync and async code in one process: an **async** handler calls a library that only has
//! a **blocking** client for a second service.
//!
//! A pure-async stack cannot serve this: a blocking client that drives its own runtime
//! panics inside another runtime's task, and one that blocks on the same runtime can
//! starve it. Here the blocking client waits on a completion queue fed by rsgrpc's poller
//! thread, so it works from inside the async handler, on the default runtime, with no
//! set-up.

use rsgrpc::{Request, Response, Status};

/// Messages and stubs generated from `examples/proto/mixed/mixed.proto`.
pub mod mixed {
    rsgrpc::include_proto!("mixed");
}

use mixed::{PriceReply, PriceRequest, QuoteReply, QuoteRequest};

/// A "third-party" library with a synchronous API, built on the blocking client.
pub mod pricing {
    use super::mixed::PriceRequest;
    use super::mixed::prices_client::PricesBlockingClient;
    use rsgrpc::Status;

    /// Looks prices up in the price service.
    #[derive(Clone, Debug)]
    pub struct PriceBook {
        client: PricesBlockingClient,
    }

    impl PriceBook {
        /// A price book reading from the price service at `target`.
        ///
        /// # Errors
        ///
        /// When the target cannot be parsed.
        pub fn new(target: &str) -> Result<PriceBook, rsgrpc::Error> {
            Ok(PriceBook {
                client: PricesBlockingClient::connect_lazy(target)?,
            })
        }

        /// The unit price of `item`, in cents: a plain blocking call.
        ///
        /// # Errors
        ///
        /// The price service's status.
        pub fn cents(&self, item: &str) -> Result<u64, Status> {
            let reply = self.client.price(PriceRequest {
                item: item.to_owned(),
            })?;
            Ok(reply.into_inner().cents)
        }
    }
}

/// The back end: a fixed price list, as blocking handlers.
pub struct PriceList;

impl mixed::prices_server::PricesBlocking for PriceList {
    fn price(&self, request: Request<PriceRequest>) -> Result<Response<PriceReply>, Status> {
        let cents = match request.get_ref().item.as_str() {
            "apple" => 40,
            "bread" => 250,
            "coffee" => 1_200,
            other => return Err(Status::not_found(format!("no price for {other:?}"))),
        };
        Ok(Response::new(PriceReply { cents }))
    }
}

/// The front end: async handlers that use the blocking [`pricing::PriceBook`].
pub struct Shop {
    /// Where prices come from.
    pub book: pricing::PriceBook,
}

impl mixed::shop_server::Shop for Shop {
    async fn quote(&self, request: Request<QuoteRequest>) -> Result<Response<QuoteReply>, Status> {
        let QuoteRequest { item, quantity } = request.into_inner();
        // A synchronous library call inside an async handler.
        let unit = self.book.cents(&item)?;
        Ok(Response::new(QuoteReply {
            item,
            total_cents: unit * u64::from(quantity),
        }))
    }
}
