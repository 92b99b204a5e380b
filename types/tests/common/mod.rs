//! What the peer tests share: one error detail of each type.

use std::time::Duration;

use rsgrpc_types::{
    BadRequest, DebugInfo, ErrorDetail, ErrorInfo, Help, LocalizedMessage, PreconditionFailure,
    QuotaFailure, RequestInfo, ResourceInfo, RetryInfo,
};

/// One detail of each type, with values the peers check.
pub(crate) fn details() -> Vec<ErrorDetail> {
    vec![
        ErrorInfo::new(
            "QUOTA",
            "example.com",
            [("zone".to_owned(), "eu".to_owned())],
        )
        .into(),
        RetryInfo::after(Duration::new(3, 500)).into(),
        DebugInfo::new(["a.py:1", "b.py:2"], "boom").into(),
        QuotaFailure::with_violation("user:1", "daily").into(),
        PreconditionFailure::with_violation("TOS", "user:1", "unsigned").into(),
        BadRequest::with_violation("name", "empty").into(),
        RequestInfo::new("r-1", "node 7").into(),
        ResourceInfo::new("book", "b/1", "me", "gone").into(),
        Help::with_link("docs", "https://example.com").into(),
        LocalizedMessage::new("fr-FR", "non").into(),
    ]
}
