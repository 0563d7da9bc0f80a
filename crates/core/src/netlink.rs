//! The kernel's routing state, through rtnetlink.
//!
//! Everything core reads from or writes to the kernel's IPv6 routing tables
//! goes through [`Kernel`]; the rest of the daemon speaks in [`Route`]s.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

/// An IPv6 route as core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination address.
    pub destination: Ipv6Addr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Routing table.
    pub table: u32,
    /// Route protocol (who installed it).
    pub protocol: u8,
    /// Output interface index, if any.
    pub oif: Option<u32>,
}

impl Route {
    /// Reads the fields core cares about; `None` for non-IPv6 routes.
    pub fn from_message(msg: &RouteMessage) -> Option<Route> {
        if msg.header.address_family != AddressFamily::Inet6 {
            return None;
        }
        let mut table = u32::from(msg.header.table);
        let mut destination = Ipv6Addr::UNSPECIFIED;
        let mut oif = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = *a,
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        Some(Route {
            destination,
            prefix_len: msg.header.destination_prefix_length,
            table,
            protocol: msg.header.protocol.into(),
            oif,
        })
    }
}

/// A failed kernel request.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct KernelError {
    what: &'static str,
    #[source]
    source: rtnetlink::Error,
}

/// The rtnetlink connection.
#[derive(Debug, Clone)]
pub struct Kernel {
    handle: Handle,
}

impl Kernel {
    /// Opens the rtnetlink socket; its connection task runs on the current runtime.
    pub fn connect() -> std::io::Result<Kernel> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Kernel { handle })
    }

    /// All IPv6 routes in `table` installed with `protocol`.
    pub async fn routes(&self, table: u32, protocol: u8) -> Result<Vec<Route>, KernelError> {
        let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError {
                what: "route dump",
                source,
            })?;
        Ok(messages
            .iter()
            .filter_map(Route::from_message)
            .filter(|r| r.table == table && r.protocol == protocol)
            .collect())
    }

    /// Interface names by index.
    pub async fn interface_names(&self) -> Result<HashMap<u32, String>, KernelError> {
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError {
                what: "link dump",
                source,
            })?;
        Ok(links
            .iter()
            .filter_map(|link| {
                link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some((link.header.index, name.clone())),
                    _ => None,
                })
            })
            .collect())
    }
}
