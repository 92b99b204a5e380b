//! Channel targets, as gRPC's naming document spells them:
//!
//! | target | resolved by |
//! |---|---|
//! | `host:port`, `dns:///host:port`, `dns://authority/host:port` | DNS (all addresses) |
//! | `http://host:port`, `https://host:port` (TLS) | DNS |
//! | `ipv4:1.2.3.4:80,5.6.7.8:80`, `ipv6:[::1]:80,[::2]:80` | the list itself |
//! | `unix:path`, `unix:/abs/path`, `unix:///abs/path` | the socket path |
//!
//! A port left out is 443 with TLS and 80 without.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::Address;
use crate::error::{Error, Result};

/// A parsed target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) kind: TargetKind,
    /// Sent as `:authority`.
    pub(crate) authority: String,
    /// The host a TLS certificate must name (before any override).
    pub(crate) tls_host: String,
    /// The target asked for TLS (`https://`).
    pub(crate) https: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TargetKind {
    Dns { host: String, port: u16 },
    Static(Vec<Address>),
}

fn bad(target: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_target(format!("target {target:?}: {why}"))
}

/// Splits `host[:port]` (an IPv6 host in brackets).
fn host_port(target: &str, text: &str, default_port: u16) -> Result<(String, u16)> {
    if text.is_empty() {
        return Err(bad(target, "no host"));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(target, "an IPv6 address in brackets is not closed"))?;
        let port = match after {
            "" => default_port,
            _ => after
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad(target, format!("bad port {after:?}")))?,
        };
        return Ok((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address, no port.
        Some((host, _)) if host.contains(':') => Ok((text.to_owned(), default_port)),
        Some((host, port)) => {
            let port = port
                .parse()
                .map_err(|_| bad(target, format!("bad port {port:?}")))?;
            if host.is_empty() {
                return Err(bad(target, "no host"));
            }
            Ok((host.to_owned(), port))
        }
        None => Ok((text.to_owned(), default_port)),
    }
}

fn authority_of(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses a target; `tls` says whether the channel uses TLS (for the default port).
pub(crate) fn parse(target: &str, tls: bool) -> Result<Target> {
    let default_port = if tls { 443 } else { 80 };
    if let Some(path) = target.strip_prefix("unix:") {
        let path = match path.strip_prefix("//") {
            Some(abs) => abs,
            None => path,
        };
        if path.is_empty() {
            return Err(bad(target, "no socket path"));
        }
        return Ok(Target {
            kind: TargetKind::Static(vec![Address::Unix(PathBuf::from(path))]),
            authority: "localhost".to_owned(),
            tls_host: "localhost".to_owned(),
            https: false,
        });
    }
    for (prefix, v6) in [("ipv4:", false), ("ipv6:", true)] {
        let Some(list) = target.strip_prefix(prefix) else {
            continue;
        };
        let mut addresses = Vec::new();
        for item in list.split(',') {
            let (host, port) = host_port(target, item.trim(), default_port)?;
            let ip: IpAddr = host
                .parse()
                .map_err(|_| bad(target, format!("{host:?} is not an IP address")))?;
            if ip.is_ipv6() != v6 {
                return Err(bad(
                    target,
                    format!("{host} is not an {} address", &prefix[..4]),
                ));
            }
            addresses.push(Address::Tcp(SocketAddr::new(ip, port)));
        }
        let first = match &addresses[0] {
            Address::Tcp(addr) => *addr,
            Address::Unix(_) => unreachable!("only IP addresses are parsed here"),
        };
        return Ok(Target {
            kind: TargetKind::Static(addresses),
            authority: first.to_string(),
            tls_host: first.ip().to_string(),
            https: false,
        });
    }
    let (rest, https) = if let Some(rest) = target.strip_prefix("https://") {
        (rest, true)
    } else if let Some(rest) = target.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = target.strip_prefix("dns:") {
        // dns:host:port, dns:///host:port or dns://authority/host:port, as gRPC's naming
        // document allows. A DNS server named in the authority is not asked: the
        // system's resolver answers, as for the other forms.
        let rest = match rest.strip_prefix("//") {
            Some(after) => match after.split_once('/') {
                Some(("", name)) => name,
                Some((server, name)) => {
                    tracing::debug!(
                        %server,
                        "the target names a DNS server; the system's resolver is used"
                    );
                    name
                }
                None => return Err(bad(target, "expected dns:///host:port")),
            },
            None => rest,
        };
        (rest, false)
    } else if target.contains("://") {
        let scheme = target.split("://").next().unwrap_or_default();
        return Err(bad(
            target,
            format!("scheme {scheme:?} is not supported (http, https, dns, ipv4, ipv6, unix)"),
        ));
    } else {
        (target, false)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err(bad(target, "a target has no path"));
    }
    let default_port = if https || tls { 443 } else { 80 };
    let (host, port) = host_port(target, rest, default_port)?;
    Ok(Target {
        kind: TargetKind::Dns {
            host: host.clone(),
            port,
        },
        authority: authority_of(&host, port),
        tls_host: host,
        https,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(host: &str, port: u16) -> TargetKind {
        TargetKind::Dns {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn dns_targets() {
        for text in [
            "localhost:50051",
            "dns:///localhost:50051",
            "dns:localhost:50051",
            "dns://8.8.8.8/localhost:50051",
            "dns://127.0.0.53:53/localhost:50051",
            "http://localhost:50051",
            "http://localhost:50051/",
        ] {
            let t = parse(text, false).unwrap();
            assert_eq!(t.kind, dns("localhost", 50051), "{text}");
            assert_eq!(t.authority, "localhost:50051");
            assert!(!t.https);
        }
        let t = parse("https://example.com", false).unwrap();
        assert_eq!(t.kind, dns("example.com", 443));
        assert!(t.https);
        assert_eq!(
            parse("example.com", false).unwrap().kind,
            dns("example.com", 80)
        );
        assert_eq!(
            parse("example.com", true).unwrap().kind,
            dns("example.com", 443)
        );
        let t = parse("http://[::1]:7", false).unwrap();
        assert_eq!(t.kind, dns("::1", 7));
        assert_eq!(t.authority, "[::1]:7");
    }

    #[test]
    fn address_lists_and_unix_paths() {
        let t = parse("ipv4:127.0.0.1:1,127.0.0.2:2", false).unwrap();
        assert_eq!(
            t.kind,
            TargetKind::Static(vec![
                Address::Tcp("127.0.0.1:1".parse().unwrap()),
                Address::Tcp("127.0.0.2:2".parse().unwrap()),
            ])
        );
        assert_eq!(t.authority, "127.0.0.1:1");
        let t = parse("ipv6:[::1]:5,::2", false).unwrap();
        assert_eq!(
            t.kind,
            TargetKind::Static(vec![
                Address::Tcp("[::1]:5".parse().unwrap()),
                Address::Tcp("[::2]:80".parse().unwrap()),
            ])
        );
        for (text, path) in [
            ("unix:/tmp/s.sock", "/tmp/s.sock"),
            ("unix:///tmp/s.sock", "/tmp/s.sock"),
            ("unix:rel.sock", "rel.sock"),
        ] {
            let t = parse(text, false).unwrap();
            assert_eq!(
                t.kind,
                TargetKind::Static(vec![Address::Unix(path.into())]),
                "{text}"
            );
            assert_eq!(t.authority, "localhost");
        }
    }

    #[test]
    fn bad_targets_are_named() {
        for text in [
            "ftp://x:1",
            "http://x:1/path",
            "http://",
            "x:notaport",
            "ipv4:::1",
            "ipv6:127.0.0.1",
            "ipv4:",
            "unix:",
            "dns://8.8.8.8",
            "[::1",
        ] {
            let err = parse(text, false).unwrap_err();
            assert!(err.is_invalid_target(), "{text}: {err}");
            assert!(err.to_string().contains(text), "{text}: {err}");
        }
    }
}
