//! gRPC service config (JSON, as gRPC's service-config document defines it): per method
//! (gRFC A2's name matching: the method's own entry, else its service's, else the default)
//! a timeout, wait-for-ready, request and response size limits and a retry policy; retry
//! throttling; and the load-balancing policy. What this implementation does not do is an
//! error, never silently ignored: a hedging policy, a health-check config, unknown fields.
//!
//! The text is parsed by `serde_json` (RFC 8259: a lone surrogate escape is an error,
//! nesting deeper than 127 is refused) into a document whose objects keep their order, so
//! fields are read, and the first fault reported, in the order they are written; a field
//! written twice counts once, with its last value.
//!
//! ```json
//! {
//!   "loadBalancingConfig": [{ "round_robin": {} }],
//!   "methodConfig": [{
//!     "name": [{ "service": "helloworld.Greeter" }],
//!     "retryPolicy": {
//!       "maxAttempts": 4,
//!       "initialBackoff": "0.1s",
//!       "maxBackoff": "1s",
//!       "backoffMultiplier": 2,
//!       "retryableStatusCodes": ["UNAVAILABLE"]
//!     }
//!   }],
//!   "retryThrottling": { "maxTokens": 10, "tokenRatio": 0.1 }
//! }
//! ```

use std::time::Duration;

use serde_json::{Map, Value};

use super::LoadBalancingPolicy;
use crate::error::{Error, Result};
use crate::status::Code;

/// A parsed service config; see [`ChannelBuilder::service_config`](super::ChannelBuilder::service_config).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceConfig {
    methods: Vec<MethodConfig>,
    pub(crate) load_balancing: Option<LoadBalancingPolicy>,
    pub(crate) throttling: Option<Throttling>,
}

/// One `methodConfig` entry: what applies to the calls of the methods it names.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct MethodConfig {
    /// `(service, method)`; an empty service matches every method.
    names: Vec<(String, Option<String>)>,
    /// The longest a call may take: a shorter timeout of the call's own wins.
    pub(crate) timeout: Option<Duration>,
    /// Whether calls wait for a ready connection, unless the call itself says.
    pub(crate) wait_for_ready: Option<bool>,
    /// Largest request message: the smaller of this and the client's limit applies.
    pub(crate) max_request_bytes: Option<usize>,
    /// Largest response message: the smaller of this and the client's limit applies.
    pub(crate) max_response_bytes: Option<usize>,
    pub(crate) retry: Option<RetryPolicy>,
}

/// When and how a failed call is tried again.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) multiplier: f64,
    pub(crate) codes: Vec<Code>,
}

/// Retry throttling: a token bucket over the channel's calls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Throttling {
    pub(crate) max_tokens: f64,
    pub(crate) token_ratio: f64,
}

/// Retries allowed at most (more in a config are capped, as gRPC does).
const MAX_ATTEMPTS: u32 = 5;

impl ServiceConfig {
    /// Parses a service config.
    ///
    /// # Errors
    ///
    /// When the text is not JSON (RFC 8259; a lone surrogate escape and nesting deeper
    /// than 127 levels are refused), or a field has the wrong type or an invalid value
    /// (the message names it). A field written twice counts once, with its last value.
    ///
    /// ```
    /// let config = rsgrpc::channel::ServiceConfig::from_json(
    ///     r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3,
    ///        "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
    ///        "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
    /// )?;
    /// # drop(config);
    /// # Ok::<(), rsgrpc::Error>(())
    /// ```
    pub fn from_json(json: &str) -> Result<ServiceConfig> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let root = value.object("service config")?;
        let mut config = ServiceConfig::default();
        for (key, value) in root {
            match key.as_str() {
                "methodConfig" => {
                    for method in value.array("methodConfig")? {
                        config.methods.push(MethodConfig::from_json(method)?);
                    }
                }
                "loadBalancingConfig" => {
                    // The first policy this implementation knows.
                    for entry in value.array("loadBalancingConfig")? {
                        let entry = entry.object("loadBalancingConfig entry")?;
                        let known = entry.iter().find_map(|(name, _)| policy(name));
                        if known.is_some() {
                            config.load_balancing = known;
                            break;
                        }
                    }
                }
                "loadBalancingPolicy" => {
                    let name = value.string("loadBalancingPolicy")?;
                    config.load_balancing =
                        Some(policy(&name.to_ascii_lowercase()).ok_or_else(|| {
                            invalid(format!("unknown loadBalancingPolicy {name:?}"))
                        })?);
                }
                "healthCheckConfig" => {
                    return Err(invalid(
                        "healthCheckConfig (client-side health checking) is not supported",
                    ));
                }
                "retryThrottling" => {
                    let mut max_tokens = None;
                    let mut token_ratio = None;
                    for (key, value) in value.object("retryThrottling")? {
                        match key.as_str() {
                            "maxTokens" => max_tokens = Some(value.number("maxTokens")?),
                            "tokenRatio" => token_ratio = Some(value.number("tokenRatio")?),
                            other => {
                                return Err(invalid(format!(
                                    "unknown field {other:?} in retryThrottling"
                                )));
                            }
                        }
                    }
                    let max_tokens =
                        max_tokens.ok_or_else(|| invalid("retryThrottling needs maxTokens"))?;
                    let token_ratio =
                        token_ratio.ok_or_else(|| invalid("retryThrottling needs tokenRatio"))?;
                    if max_tokens <= 0.0 || max_tokens > 1000.0 {
                        return Err(invalid("retryThrottling.maxTokens must be in (0, 1000]"));
                    }
                    // JSON numbers here are finite, so these comparisons are total.
                    if token_ratio <= 0.0 {
                        return Err(invalid("retryThrottling.tokenRatio must be positive"));
                    }
                    config.throttling = Some(Throttling {
                        max_tokens,
                        token_ratio,
                    });
                }
                other => return Err(invalid(format!("unknown field {other:?}"))),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for method in &config.methods {
            for name in &method.names {
                if !seen.insert(name) {
                    return Err(invalid(format!(
                        "the name {{service: {:?}, method: {:?}}} is in two methodConfig entries",
                        name.0,
                        name.1.as_deref().unwrap_or("")
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The method config for `/service/method`, by gRPC's precedence (gRFC A2): the
    /// method's own entry, then its service's, then the default (empty name).
    pub(crate) fn method(&self, path: &str) -> Option<&MethodConfig> {
        let (service, method) = path.trim_start_matches('/').split_once('/')?;
        let mut service_match = None;
        let mut default_match = None;
        for config in &self.methods {
            for (s, m) in &config.names {
                match (s.as_str(), m.as_deref()) {
                    (s, Some(m)) if s == service && m == method => return Some(config),
                    (s, None) if s == service => service_match = Some(config),
                    ("", None) => default_match = Some(config),
                    _ => {}
                }
            }
        }
        service_match.or(default_match)
    }

    /// The retry policy for `/service/method` (see [`method`](Self::method)).
    pub(crate) fn retry_policy(&self, path: &str) -> Option<&RetryPolicy> {
        self.method(path)?.retry.as_ref()
    }
}

fn policy(name: &str) -> Option<LoadBalancingPolicy> {
    match name {
        "round_robin" => Some(LoadBalancingPolicy::RoundRobin),
        "pick_first" => Some(LoadBalancingPolicy::PickFirst),
        _ => None,
    }
}

impl MethodConfig {
    fn from_json(value: &Value) -> Result<MethodConfig> {
        let mut config = MethodConfig::default();
        for (key, value) in value.object("methodConfig entry")? {
            match key.as_str() {
                "name" => {
                    for name in value.array("name")? {
                        let mut service = String::new();
                        let mut method = None;
                        for (key, value) in name.object("name entry")? {
                            match key.as_str() {
                                "service" => service = value.string("service")?,
                                "method" => method = Some(value.string("method")?),
                                other => {
                                    return Err(invalid(format!(
                                        "unknown field {other:?} in a name entry"
                                    )));
                                }
                            }
                        }
                        let method = method.filter(|m| !m.is_empty());
                        if service.is_empty() && method.is_some() {
                            return Err(invalid("a method name needs its service"));
                        }
                        config.names.push((service, method));
                    }
                }
                "timeout" => config.timeout = Some(duration(value, "timeout")?),
                "waitForReady" => config.wait_for_ready = Some(value.boolean("waitForReady")?),
                "maxRequestMessageBytes" => {
                    config.max_request_bytes = Some(size(value, "maxRequestMessageBytes")?);
                }
                "maxResponseMessageBytes" => {
                    config.max_response_bytes = Some(size(value, "maxResponseMessageBytes")?);
                }
                "retryPolicy" => config.retry = Some(RetryPolicy::from_json(value)?),
                "hedgingPolicy" => {
                    return Err(invalid(
                        "hedgingPolicy is not supported; use a retryPolicy instead",
                    ));
                }
                other => {
                    return Err(invalid(format!(
                        "unknown field {other:?} in a methodConfig entry"
                    )));
                }
            }
        }
        Ok(config)
    }
}

/// A size in bytes: a non-negative integer (protobuf JSON writes 64-bit integers as
/// strings, so a string of digits is accepted too).
fn size(value: &Value, field: &str) -> Result<usize> {
    let n = match (value.as_f64(), value) {
        (Some(n), _) if n.fract() == 0.0 && n >= 0.0 => n,
        (_, Value::String(s)) => s
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| invalid(format!("{field} {s:?} is not a number of bytes")))?,
        _ => return Err(invalid(format!("{field} must be a non-negative integer"))),
    };
    Ok(if n >= usize::MAX as f64 {
        usize::MAX
    } else {
        n as usize
    })
}

impl RetryPolicy {
    fn from_json(value: &Value) -> Result<RetryPolicy> {
        let mut max_attempts = None;
        let mut initial_backoff = None;
        let mut max_backoff = None;
        let mut multiplier = None;
        let mut codes = None;
        for (key, value) in value.object("retryPolicy")? {
            match key.as_str() {
                "maxAttempts" => max_attempts = Some(value.number("maxAttempts")?),
                "initialBackoff" => initial_backoff = Some(duration(value, "initialBackoff")?),
                "maxBackoff" => max_backoff = Some(duration(value, "maxBackoff")?),
                "backoffMultiplier" => multiplier = Some(value.number("backoffMultiplier")?),
                "retryableStatusCodes" => {
                    let mut list = Vec::new();
                    for code in value.array("retryableStatusCodes")? {
                        list.push(status_code(code)?);
                    }
                    codes = Some(list);
                }
                other => {
                    return Err(invalid(format!("unknown field {other:?} in a retryPolicy")));
                }
            }
        }
        let missing = |field: &str| invalid(format!("retryPolicy needs {field}"));
        let max_attempts = max_attempts.ok_or_else(|| missing("maxAttempts"))?;
        if max_attempts < 2.0 || max_attempts.fract() != 0.0 {
            return Err(invalid(
                "retryPolicy.maxAttempts must be an integer of at least 2",
            ));
        }
        let initial_backoff = initial_backoff.ok_or_else(|| missing("initialBackoff"))?;
        let max_backoff = max_backoff.ok_or_else(|| missing("maxBackoff"))?;
        let multiplier = multiplier.ok_or_else(|| missing("backoffMultiplier"))?;
        let codes = codes.ok_or_else(|| missing("retryableStatusCodes"))?;
        if initial_backoff.is_zero() || max_backoff.is_zero() {
            return Err(invalid("retryPolicy backoffs must be positive"));
        }
        if multiplier <= 0.0 {
            return Err(invalid("retryPolicy.backoffMultiplier must be positive"));
        }
        if codes.is_empty() {
            return Err(invalid(
                "retryPolicy.retryableStatusCodes must not be empty",
            ));
        }
        Ok(RetryPolicy {
            max_attempts: (max_attempts.min(f64::from(MAX_ATTEMPTS))) as u32,
            initial_backoff,
            max_backoff,
            multiplier,
            codes,
        })
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_config(format!("service config: {}", message.into()))
}

/// A protobuf JSON duration: `"1.5s"`.
fn duration(value: &Value, field: &str) -> Result<Duration> {
    let text = value.string(field)?;
    let seconds = text
        .strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| invalid(format!("{field} {text:?} is not a duration like \"0.1s\"")))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| invalid(format!("{field} {text:?} is out of range")))
}

/// A status code by name (`"UNAVAILABLE"`) or number.
fn status_code(value: &Value) -> Result<Code> {
    match (value.as_f64(), value) {
        (Some(n), _) if n.fract() == 0.0 => {
            Code::try_from(n as i32).map_err(|_| invalid(format!("unknown status code {n}")))
        }
        (_, Value::String(name)) => {
            Code::from_name(name).ok_or_else(|| invalid(format!("unknown status code {name:?}")))
        }
        _ => Err(invalid("a status code is a name or a number")),
    }
}

/// A JSON value read as a config field: the error names the field when its type is
/// wrong.
trait Field {
    fn object(&self, what: &str) -> Result<&Map<String, Value>>;
    fn array(&self, what: &str) -> Result<&[Value]>;
    fn string(&self, what: &str) -> Result<String>;
    fn number(&self, what: &str) -> Result<f64>;
    fn boolean(&self, what: &str) -> Result<bool>;
}

impl Field for Value {
    fn object(&self, what: &str) -> Result<&Map<String, Value>> {
        self.as_object()
            .ok_or_else(|| invalid(format!("{what} must be an object")))
    }

    fn array(&self, what: &str) -> Result<&[Value]> {
        self.as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| invalid(format!("{what} must be an array")))
    }

    fn string(&self, what: &str) -> Result<String> {
        self.as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("{what} must be a string")))
    }

    /// Always finite: JSON has no infinities, and serde_json refuses numbers too large
    /// for an `f64`.
    fn number(&self, what: &str) -> Result<f64> {
        self.as_f64()
            .ok_or_else(|| invalid(format!("{what} must be a number")))
    }

    fn boolean(&self, what: &str) -> Result<bool> {
        self.as_bool()
            .ok_or_else(|| invalid(format!("{what} must be true or false")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
        "loadBalancingConfig": [{"weighted_target": {}}, {"round_robin": {}}],
        "methodConfig": [
            {"name": [{"service": "a.S", "method": "M"}],
             "retryPolicy": {"maxAttempts": 9, "initialBackoff": "0.1s", "maxBackoff": "2s",
                             "backoffMultiplier": 1.5, "retryableStatusCodes": ["UNAVAILABLE", 4]}},
            {"name": [{"service": "a.S"}],
             "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s",
                             "backoffMultiplier": 1, "retryableStatusCodes": ["ABORTED"]}},
            {"name": [{}], "timeout": "1s"}
        ],
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
    }"#;

    #[test]
    fn a_full_config_parses() {
        let config = ServiceConfig::from_json(FULL).unwrap();
        assert_eq!(config.load_balancing, Some(LoadBalancingPolicy::RoundRobin));
        assert_eq!(
            config.throttling,
            Some(Throttling {
                max_tokens: 10.0,
                token_ratio: 0.1
            })
        );
        let exact = config.retry_policy("/a.S/M").unwrap();
        assert_eq!(exact.max_attempts, 5, "capped");
        assert_eq!(exact.codes, vec![Code::Unavailable, Code::DeadlineExceeded]);
        assert_eq!(exact.initial_backoff, Duration::from_millis(100));
        let service = config.retry_policy("/a.S/Other").unwrap();
        assert_eq!(service.codes, vec![Code::Aborted]);
        // The default entry has no retry policy.
        assert_eq!(config.retry_policy("/b.T/M"), None);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        for (json, says) in [
            ("{", "not JSON"),
            (r#"{"methodConfig": 3}"#, "methodConfig must be an array"),
            (
                r#"{"methodConfig": [{"retryPolicy": {"maxAttempts": 1}}]}"#,
                "maxAttempts",
            ),
            (
                r#"{"methodConfig": [{"retryPolicy": {"maxAttempts": 3, "initialBackoff": "x",
                   "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
                "initialBackoff",
            ),
            (
                r#"{"methodConfig": [{"retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s",
                   "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["NOPE"]}}]}"#,
                "NOPE",
            ),
            (r#"{"loadBalancingPolicy": "random"}"#, "random"),
            (
                r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}"#,
                "maxTokens",
            ),
        ] {
            let err = ServiceConfig::from_json(json).unwrap_err();
            assert!(err.is_invalid_config(), "{json}: {err}");
            assert!(err.to_string().contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn method_fields_are_read_with_grpc_name_precedence() {
        let config = ServiceConfig::from_json(
            r#"{"methodConfig": [
                {"name": [{}], "timeout": "10s", "waitForReady": false},
                {"name": [{"service": "a.S"}], "timeout": "2.5s", "waitForReady": true,
                 "maxRequestMessageBytes": 1024, "maxResponseMessageBytes": "2048"},
                {"name": [{"service": "a.S", "method": "M"}], "maxRequestMessageBytes": 7}
            ]}"#,
        )
        .unwrap();
        let exact = config.method("/a.S/M").unwrap();
        // The method's own entry applies alone, not merged with its service's.
        assert_eq!(exact.max_request_bytes, Some(7));
        assert_eq!(exact.timeout, None);
        let service = config.method("/a.S/Other").unwrap();
        assert_eq!(service.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(service.wait_for_ready, Some(true));
        assert_eq!(service.max_request_bytes, Some(1024));
        assert_eq!(service.max_response_bytes, Some(2048));
        let default = config.method("/b.T/M").unwrap();
        assert_eq!(default.timeout, Some(Duration::from_secs(10)));
        assert_eq!(default.wait_for_ready, Some(false));
        assert_eq!(config.method("not a path"), None);
    }

    #[test]
    fn what_is_not_implemented_is_refused_not_ignored() {
        for (json, says) in [
            (
                r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2}}]}"#,
                "hedgingPolicy is not supported",
            ),
            (
                r#"{"healthCheckConfig": {"serviceName": ""}}"#,
                "healthCheckConfig",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "timeOut": "1s"}]}"#,
                "timeOut",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 1, "tokenRatio": 1, "x": 1}}"#,
                "\"x\"",
            ),
            (r#"{"frobnicate": true}"#, "frobnicate"),
            (
                r#"{"methodConfig": [{"name": [{}], "waitForReady": "yes"}]}"#,
                "waitForReady",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "maxRequestMessageBytes": -1}]}"#,
                "maxRequestMessageBytes",
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": "a"}]}, {"name": [{"service": "a"}]}]}"#,
                "two methodConfig entries",
            ),
        ] {
            let err = ServiceConfig::from_json(json).unwrap_err();
            assert!(err.to_string().contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn json_edge_cases() {
        // Escapes, numbers and nesting where the config takes anything: the configuration
        // of a policy this implementation does not know, skipped for the next one.
        let config = ServiceConfig::from_json(
            r#" {"loadBalancingConfig": [{"x\u00e9\n\"": [1, -2.5e1, true, null, [[{}]]]},
                {"round_robin": {}}]} "#,
        )
        .unwrap();
        assert_eq!(config.load_balancing, Some(LoadBalancingPolicy::RoundRobin));
        let nested = |depth: usize| {
            format!(
                r#"{{"loadBalancingConfig": [{{"future": {}{}}}]}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        // Three levels around the value: up to 127 in all is accepted.
        assert!(ServiceConfig::from_json(&nested(124)).is_ok());
        let err = ServiceConfig::from_json(&nested(125)).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        for bad in [
            "",
            "[1,]",
            "{\"a\" 1}",
            "\"open",
            "01x",
            "[1] 2",
            "nul",
            r#"{"\ud800": 1}"#,
            r#"{"retryThrottling": {"maxTokens": 1e999, "tokenRatio": 1}}"#,
        ] {
            let err = ServiceConfig::from_json(bad).unwrap_err();
            assert!(err.to_string().contains("not JSON"), "{bad}: {err}");
        }
        // A field written twice counts once, with its last value.
        let twice =
            r#"{"loadBalancingPolicy": "round_robin", "loadBalancingPolicy": "pick_first"}"#;
        let config = ServiceConfig::from_json(twice).unwrap();
        assert_eq!(config.load_balancing, Some(LoadBalancingPolicy::PickFirst));
    }
}
