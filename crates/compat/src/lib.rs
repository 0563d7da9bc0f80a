//! The C l3roamd's control socket: the one-line text commands Gluon's init
//! script, respondd, ddhcpd hooks and operators send to
//! `/var/run/l3roamd.sock` (`get_clients`, `get_meshifs`, `add_meshif`, ...),
//! answered with the same bytes the C daemon wrote where it wrote any.
//!
//! Three layers, so that the bytes are tested without sockets and the
//! socket without a daemon:
//!
//! - [`command`]: a line of bytes into a [`Command`] (pure, never panics,
//!   typed [`CommandError`]s that become `error: ...` lines);
//! - [`reply`]: the answers, in json-c's spaced format as the C daemon
//!   printed them (`{ "clients": 1, "clientlist": { ... } }`);
//! - [`server`]: the UNIX socket: one command per connection, then close,
//!   as in the C daemon; bounded line length, connections and time; the
//!   answers come from a [`Backend`] (core implements it over its engine
//!   and its own gRPC service, tests with a fake).
//!
//! The mapping onto our daemons and what differs from the C daemon:
//! `docs/design-notes.md`, "The C control socket".

pub mod command;
pub mod reply;
pub mod server;

pub use command::{Command, CommandError, Verbosity};
pub use reply::{AddressState, Client};
pub use server::{answer, serve, Backend, BackendError, Counter, Counters, Limits, SharedCounters};
