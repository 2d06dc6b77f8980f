//! This host's IPv4 interfaces, and which of them discovery may multicast
//! on. Nothing here picks an interface by itself: the operator names them
//! (or says `auto`), and a named address this host does not have is an
//! error that lists the ones it does.

use std::net::Ipv4Addr;

use crate::config::InterfaceChoice;

/// One IPv4 address of one interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostInterface {
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub up: bool,
    pub loopback: bool,
    pub multicast: bool,
    /// Neighbours are found by ARP (not loopback, not a NOARP link such as
    /// a tunnel).
    pub arp: bool,
}

impl HostInterface {
    /// Fit for WS-Discovery multicast: up, with multicast.
    pub fn can_multicast(&self) -> bool {
        self.up && self.multicast
    }

    /// `eth0 10.0.0.5/24`
    pub fn label(&self) -> String {
        format!("{} {}/{}", self.name, self.addr, self.prefix_len)
    }
}

/// Every IPv4 address on this host, in the kernel's order.
pub fn host_interfaces() -> std::io::Result<Vec<HostInterface>> {
    use nix::net::if_::InterfaceFlags as F;
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    let mut out = Vec::new();
    for a in addrs {
        let Some(ip) = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
        else {
            continue;
        };
        let prefix_len = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|m| u32::from(m.ip()).count_ones() as u8)
            .unwrap_or(32);
        out.push(HostInterface {
            name: a.interface_name.clone(),
            addr: ip,
            prefix_len,
            up: a.flags.contains(F::IFF_UP) && a.flags.contains(F::IFF_RUNNING),
            loopback: a.flags.contains(F::IFF_LOOPBACK),
            multicast: a.flags.contains(F::IFF_MULTICAST),
            arp: !a.flags.contains(F::IFF_LOOPBACK) && !a.flags.contains(F::IFF_NOARP),
        });
    }
    Ok(out)
}

/// The interfaces a choice means on a host with `host`'s interfaces.
/// `Unset` is none; `Auto` is every up, non-loopback one with multicast;
/// a list must name addresses the host has.
pub fn resolve(
    choice: &InterfaceChoice,
    host: &[HostInterface],
) -> Result<Vec<HostInterface>, String> {
    match choice {
        InterfaceChoice::Unset => Ok(Vec::new()),
        InterfaceChoice::Auto => {
            let picked: Vec<HostInterface> = host
                .iter()
                .filter(|i| !i.loopback && i.can_multicast())
                .cloned()
                .collect();
            if picked.is_empty() {
                return Err(format!(
                    "discovery interfaces `auto`: this host has no up, non-loopback IPv4 interface with multicast ({})",
                    describe(host)
                ));
            }
            Ok(picked)
        }
        InterfaceChoice::List(addrs) => addrs
            .iter()
            .map(|a| {
                host.iter().find(|i| i.addr == *a).cloned().ok_or_else(|| {
                    format!(
                        "discovery interface {a} is not an address of this host; it has {}",
                        describe(host)
                    )
                })
            })
            .collect(),
    }
}

/// `eth0 10.0.0.5/24, lo 127.0.0.1/8`
pub fn describe(host: &[HostInterface]) -> String {
    if host.is_empty() {
        return "no IPv4 addresses".into();
    }
    host.iter()
        .map(HostInterface::label)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addr: &str, loopback: bool) -> HostInterface {
        HostInterface {
            name: name.into(),
            addr: addr.parse().unwrap(),
            prefix_len: 24,
            up: true,
            loopback,
            multicast: true,
            arp: !loopback,
        }
    }

    #[test]
    fn auto_takes_every_up_non_loopback_multicast_interface() {
        let mut down = iface("eth2", "10.2.0.1", false);
        down.up = false;
        let mut nomc = iface("tun0", "10.3.0.1", false);
        nomc.multicast = false;
        let host = vec![
            iface("lo", "127.0.0.1", true),
            iface("eth0", "10.0.0.5", false),
            iface("eth1", "10.1.0.5", false),
            down,
            nomc,
        ];
        let got = resolve(&InterfaceChoice::Auto, &host).unwrap();
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(resolve(&InterfaceChoice::Auto, &host[..1]).is_err());
    }

    #[test]
    fn an_address_not_on_this_host_is_an_error_listing_those_that_are() {
        let host = vec![
            iface("lo", "127.0.0.1", true),
            iface("eth0", "10.0.0.5", false),
        ];
        let e = resolve(
            &InterfaceChoice::List(vec!["192.0.2.9".parse().unwrap()]),
            &host,
        )
        .unwrap_err();
        assert!(
            e.contains("192.0.2.9") && e.contains("eth0 10.0.0.5/24"),
            "{e}"
        );
        let ok = resolve(
            &InterfaceChoice::List(vec!["127.0.0.1".parse().unwrap()]),
            &host,
        )
        .unwrap();
        assert_eq!(ok[0].name, "lo");
        assert!(resolve(&InterfaceChoice::Unset, &host).unwrap().is_empty());
    }

    #[test]
    fn this_host_has_loopback() {
        let host = host_interfaces().unwrap();
        assert!(host.iter().any(|i| i.loopback && i.addr.is_loopback()));
    }
}
