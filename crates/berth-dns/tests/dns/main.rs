//! berth-dns end to end: real UDP and TCP sockets on loopback (port 0), queried with the
//! hickory client and with `dig`.

mod answers;
mod dig;
mod forwarding;
mod node_proxy;
mod publish;
mod support;
