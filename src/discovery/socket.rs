//! UDP sockets for WS-Discovery, configured before bind with socket2: the
//! multicast interface set explicitly (never left to the routing table, which
//! would send probes out of the real NIC), TTL, loop, and a large receive
//! buffer so a reply storm from hundreds of cameras is not dropped.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

pub const MULTICAST_ADDR: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 3702;

/// The receive buffer we ask for. With root, SO_RCVBUFFORCE passes the
/// sysctl cap (rmem_max); otherwise we get what SO_RCVBUF allows.
pub const WANT_RCVBUF: usize = 8 * 1024 * 1024;

/// A socket for sending probes and receiving the replies. With an
/// interface, multicast leaves through it and the socket is bound to its
/// address, so every reply on this socket came in on that interface.
/// Without one (unicast probes, sweeps), the routing table picks the way.
pub fn prober(interface: Option<Ipv4Addr>, ttl: u32) -> io::Result<(UdpSocket, usize)> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let rcvbuf = grow_rcvbuf(&s, WANT_RCVBUF);
    // A sweep sends to thousands of hosts on a link; a datagram to a host
    // whose ARP is unresolved stays charged to this socket until ARP gives
    // up (about 3 s), so a default send buffer fills after ~90 probes and
    // the sweep stalls on absent hosts.
    grow_sndbuf(&s, WANT_SNDBUF);
    let bind = match interface {
        Some(ifc) => {
            s.set_multicast_if_v4(&ifc)?;
            s.set_multicast_ttl_v4(ttl)?;
            s.set_multicast_loop_v4(true)?;
            ifc
        }
        None => Ipv4Addr::UNSPECIFIED,
    };
    s.bind(&SockAddr::from(SocketAddrV4::new(bind, 0)))?;
    s.set_nonblocking(true)?;
    Ok((UdpSocket::from_std(s.into())?, rcvbuf))
}

/// A socket listening on `port` for multicast (joined on `interface`) and
/// unicast datagrams; shared with other listeners through SO_REUSEADDR/PORT.
pub fn listener(
    interface: Ipv4Addr,
    bind: Ipv4Addr,
    port: u16,
    join: bool,
) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    grow_rcvbuf(&s, WANT_RCVBUF);
    s.set_multicast_if_v4(&interface)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(true)?;
    s.bind(&SockAddr::from(SocketAddrV4::new(bind, port)))?;
    if join {
        s.join_multicast_v4(&MULTICAST_ADDR, &interface)?;
        // Only the groups this socket joined, on the interface it joined
        // them on: with one listener per interface, each hears its own
        // link (Linux otherwise delivers every joined group to every
        // socket bound to the port).
        #[cfg(target_os = "linux")]
        if let Err(e) = s.set_multicast_all_v4(false) {
            tracing::debug!(error = %e, "IP_MULTICAST_ALL");
        }
    }
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// The send buffer probers ask for (see [`prober`]).
pub const WANT_SNDBUF: usize = 16 * 1024 * 1024;

/// Ask for `want` bytes of receive buffer; returns what the kernel granted.
fn grow_rcvbuf(s: &Socket, want: usize) -> usize {
    if !force_buf(s, FORCE_RCV, want) {
        let _ = s.set_recv_buffer_size(want);
    }
    s.recv_buffer_size().unwrap_or(0)
}

fn grow_sndbuf(s: &Socket, want: usize) {
    if !force_buf(s, FORCE_SND, want) {
        let _ = s.set_send_buffer_size(want);
    }
}

#[cfg(target_os = "linux")]
const FORCE_RCV: libc::c_int = libc::SO_RCVBUFFORCE;
#[cfg(target_os = "linux")]
const FORCE_SND: libc::c_int = libc::SO_SNDBUFFORCE;
#[cfg(not(target_os = "linux"))]
const FORCE_RCV: i32 = 0;
#[cfg(not(target_os = "linux"))]
const FORCE_SND: i32 = 0;

/// With root, SO_*BUFFORCE passes the sysctl cap (rmem_max, wmem_max);
/// false where that is refused (then the plain option gets what it can).
fn force_buf(s: &Socket, opt: i32, want: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let v: libc::c_int = want.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: setsockopt with a valid fd, a c_int value and its size.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (s, opt, want);
        false
    }
}

pub fn multicast_target(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(MULTICAST_ADDR, port))
}
