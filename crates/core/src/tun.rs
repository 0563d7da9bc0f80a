//! The TUN catch-all device: every client prefix is routed into it, so a
//! packet for a client without a host route ends up here.

use tun::AsyncDevice;

/// Largest packet read from the device.
pub const MTU: u16 = 1500;

/// The next hop the catch-all routes name on the TUN device. Without one
/// the kernel takes a neighbour entry per destination (a NOARP one, but
/// counted against `gc_thresh3` like any), so a scan of a client prefix
/// filled the table; with one, all share the entry of this address. It is
/// never resolved (TUN has no link layer) and nothing else is on the link.
pub const NEXT_HOP: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// The open TUN device.
pub struct Tun {
    device: AsyncDevice,
    name: String,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).finish()
    }
}

impl Tun {
    /// Creates the layer-3 device `name` without packet information, up.
    ///
    /// Its MTU is the usual 1500 so that every packet a mesh link carries
    /// fits: a smaller TUN MTU would make the kernel answer "packet too big"
    /// instead of handing us the packet.
    pub fn create(name: &str) -> Result<Tun, tun::Error> {
        let mut config = tun::Configuration::default();
        config.tun_name(name).layer(tun::Layer::L3).mtu(MTU).up();
        let device = tun::create_as_async(&config)?;
        Ok(Tun {
            device,
            name: name.to_string(),
            buf: vec![0; usize::from(MTU) + 64],
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next packet routed into the device.
    pub async fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        let len = self.device.recv(&mut self.buf).await?;
        Ok(self.buf.get(..len).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// Hands a packet to the kernel as if it arrived on the device; the
    /// kernel routes it.
    pub async fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        self.device.send(packet).await.map(|_| ())
    }
}
