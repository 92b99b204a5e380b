//! Compile-only check of the golden generated code (see `codegen/tests/golden.rs`): it must
//! build with every warning denied and pass clippy, as it would in a user's crate.

#![deny(warnings)]

/// The corpus with default settings.
pub mod golden {
    include!("golden/_includes.rs");
}

/// Part of the corpus with most builder settings on.
pub mod golden_options {
    include!("golden_options/_includes.rs");
}

/// `corpus.app.v1` generated on its own, using `corpus.common` from [`golden`].
pub mod golden_split {
    include!("golden_split/_includes.rs");
}

// `skip_debug` leaves Debug to the user, and prost's Message needs it.
impl std::fmt::Debug for golden_options::helloworld::HelloReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelloReply").finish_non_exhaustive()
    }
}
