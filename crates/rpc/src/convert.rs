//! Conversions between the wire messages and the domain types.
//!
//! Messages arriving from a client are checked here: a wrong length becomes
//! `INVALID_ARGUMENT` with the field's name, never a panic.

use std::net::Ipv6Addr;

use l3roamd_types::{ipv6_from_slice, Ipv6Prefix, MacAddr};
use tonic::Status;

use crate::pb;

impl From<MacAddr> for pb::Mac {
    fn from(mac: MacAddr) -> Self {
        pb::Mac {
            octets: mac.octets().to_vec(),
        }
    }
}

impl From<Ipv6Addr> for pb::Ip6 {
    fn from(addr: Ipv6Addr) -> Self {
        pb::Ip6 {
            octets: addr.octets().to_vec(),
        }
    }
}

impl From<Ipv6Prefix> for pb::Prefix {
    fn from(prefix: Ipv6Prefix) -> Self {
        pb::Prefix {
            address: Some(prefix.addr().into()),
            length: u32::from(prefix.prefix_len()),
        }
    }
}

/// Reads a required MAC field named `field`.
pub fn mac(field: &str, mac: Option<&pb::Mac>) -> Result<MacAddr, Status> {
    let mac = mac.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))?;
    MacAddr::from_slice(&mac.octets).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// Reads a required IPv6 address field named `field`.
pub fn ip6(field: &str, addr: Option<&pb::Ip6>) -> Result<Ipv6Addr, Status> {
    let addr = addr.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))?;
    ipv6_from_slice(&addr.octets).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// Reads a required prefix field named `field`.
pub fn prefix(field: &str, prefix: Option<&pb::Prefix>) -> Result<Ipv6Prefix, Status> {
    let prefix = prefix.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))?;
    let addr = ip6(&format!("{field}.address"), prefix.address.as_ref())?;
    let len = u8::try_from(prefix.length)
        .ok()
        .filter(|l| *l <= 128)
        .ok_or_else(|| Status::invalid_argument(format!("{field}.length must be 0 to 128")))?;
    Ipv6Prefix::new(addr, len).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))
}

/// Reads a list of interface names (`field`, e.g. the mesh interfaces
/// core sends): each a valid kernel name, at most
/// [`MAX_MESH_INTERFACES`](l3roamd_daemon::config::MAX_MESH_INTERFACES),
/// duplicates dropped, order kept.
pub fn interface_names(field: &str, names: &[String]) -> Result<Vec<String>, Status> {
    use l3roamd_daemon::config::{check_interface_name, MAX_MESH_INTERFACES};
    if names.len() > MAX_MESH_INTERFACES {
        return Err(Status::invalid_argument(format!(
            "{field}: {} interfaces, at most {MAX_MESH_INTERFACES} are allowed",
            names.len()
        )));
    }
    let mut checked: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        check_interface_name(&format!("{field}[{i}]"), name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !checked.contains(name) {
            checked.push(name.clone());
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_and_deduplicated() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            interface_names("names", &names(&["wg_1", "mesh0", "wg_1"])).unwrap(),
            names(&["wg_1", "mesh0"])
        );
        let e = interface_names("names", &names(&["mesh0", "bad/name"])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("names[1]"), "{}", e.message());
        let many = vec!["m".to_string(); l3roamd_daemon::config::MAX_MESH_INTERFACES + 1];
        assert!(interface_names("names", &many).is_err());
    }

    #[test]
    fn bad_lengths_are_invalid_argument() {
        let short = pb::Mac { octets: vec![1, 2] };
        let err = mac("mac", Some(&short)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("mac"), "{}", err.message());
        assert_eq!(
            mac("mac", None).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let p = pb::Prefix {
            address: Some(Ipv6Addr::LOCALHOST.into()),
            length: 300,
        };
        assert_eq!(
            prefix("p", Some(&p)).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn round_trip() {
        let m: MacAddr = "02:00:00:00:01:00".parse().unwrap();
        assert_eq!(mac("m", Some(&m.into())).unwrap(), m);
        let p: Ipv6Prefix = "fddd:1::/64".parse().unwrap();
        assert_eq!(prefix("p", Some(&p.into())).unwrap(), p);
    }
}
