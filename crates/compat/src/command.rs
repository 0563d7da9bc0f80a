//! One line of the control socket into a [`Command`].
//!
//! The C daemon matched command words with `strncmp` (so `get_clientsXYZ`
//! was `get_clients`) and took arguments with `strtok` and `sscanf` without
//! checking them: `probe ::1` without a MAC, or `verbosity` alone,
//! dereferenced a null pointer. Here a command word must match exactly,
//! every argument is checked, and anything else is a [`CommandError`] whose
//! text the server sends back as `error: ...`. Only bytes up to the first
//! `\n` or `\r` count, as in the C daemon; what follows is ignored.

use std::net::{Ipv4Addr, Ipv6Addr};

use l3roamd_types::{Ipv6Prefix, MacAddr};

/// Longest command word or argument quoted back in an error line.
const QUOTED: usize = 40;

/// Longest kernel interface name (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// A command of the C daemon's control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `get_clients`: the clients this node serves, as JSON.
    GetClients,
    /// `get_meshifs`: the mesh interfaces in use, as JSON.
    GetMeshifs,
    /// `add_meshif IF`: use `IF` as a mesh interface too.
    AddMeshif(String),
    /// `del_meshif IF`: stop using `IF` as a mesh interface.
    DelMeshif(String),
    /// `get_prefixes`: the client prefixes routed here, as JSON.
    GetPrefixes,
    /// `add_prefix P`: take `P` as a client prefix (IPv4 ones mapped).
    AddPrefix(Ipv6Prefix),
    /// `del_prefix P`: stop taking `P` as a client prefix.
    DelPrefix(Ipv6Prefix),
    /// `add_address ADDR MAC`: give the client `MAC` the address `ADDR`.
    AddAddress(Ipv6Addr, MacAddr),
    /// `del_address ADDR MAC`: take `ADDR` from the client `MAC`.
    DelAddress(Ipv6Addr, MacAddr),
    /// `probe ADDR MAC`: look for the neighbour `ADDR` (`MAC`) now.
    Probe(Ipv6Addr, MacAddr),
    /// `has_route ADDR`: whether this node has a host route for `ADDR`
    /// (the C daemon's debugging command).
    HasRoute(Ipv6Addr),
    /// `verbosity none|verbose|debug`: the log level.
    Verbosity(Verbosity),
}

/// The C daemon's three log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `none`: neither verbose nor debug messages (our `info`).
    None,
    /// `verbose`: the C daemon's verbose messages (our `debug`).
    Verbose,
    /// `debug`: everything (our `trace`).
    Debug,
}

impl Verbosity {
    /// The tracing level it stands for, as `-v`/`-d` map ours.
    pub const fn level(self) -> &'static str {
        match self {
            Verbosity::None => "info",
            Verbosity::Verbose => "debug",
            Verbosity::Debug => "trace",
        }
    }
}

/// Why a line is no command; the text goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nothing but blanks before the end of the line.
    #[error("empty command")]
    Empty,
    /// The line is not UTF-8 text.
    #[error("the command is not text")]
    NotText,
    /// The line is longer than the server reads.
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    /// The first word is no command.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// An argument the command needs is missing.
    #[error("{command}: missing {argument}")]
    Missing {
        /// The command.
        command: &'static str,
        /// The argument's name.
        argument: &'static str,
    },
    /// More arguments than the command takes.
    #[error("{command}: unexpected argument {extra:?}")]
    Extra {
        /// The command.
        command: &'static str,
        /// The first argument too many.
        extra: String,
    },
    /// An argument does not parse.
    #[error("{command}: {argument} {value:?} is not {expected}")]
    Invalid {
        /// The command.
        command: &'static str,
        /// The argument's name.
        argument: &'static str,
        /// What was given.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// `s`, cut to at most [`QUOTED`] characters for an error line.
fn quoted(s: &str) -> String {
    s.chars().take(QUOTED).collect()
}

/// The arguments after the command word, taken one by one.
struct Args<'a> {
    command: &'static str,
    words: std::str::SplitAsciiWhitespace<'a>,
}

impl<'a> Args<'a> {
    fn next(&mut self, argument: &'static str) -> Result<&'a str, CommandError> {
        self.words.next().ok_or(CommandError::Missing {
            command: self.command,
            argument,
        })
    }

    fn invalid(&self, argument: &'static str, value: &str, expected: &'static str) -> CommandError {
        CommandError::Invalid {
            command: self.command,
            argument,
            value: quoted(value),
            expected,
        }
    }

    fn interface(&mut self) -> Result<String, CommandError> {
        let name = self.next("interface")?;
        // The kernel's dev_valid_name: 1 to 15 bytes, not . or .., no / or :.
        let valid = !name.is_empty()
            && name.len() <= MAX_IFNAME
            && name != "."
            && name != ".."
            && !name.contains(['/', ':']);
        if valid {
            Ok(name.to_string())
        } else {
            Err(self.invalid("interface", name, "an interface name"))
        }
    }

    /// An IPv6 address, or an IPv4 one mapped (`::ffff:a.b.c.d`) as the C
    /// daemon stored them.
    fn address(&mut self, ipv4: bool) -> Result<Ipv6Addr, CommandError> {
        let text = self.next("address")?;
        if let Ok(addr) = text.parse::<Ipv6Addr>() {
            return Ok(addr);
        }
        match text.parse::<Ipv4Addr>() {
            Ok(v4) if ipv4 => Ok(v4.to_ipv6_mapped()),
            _ => Err(self.invalid("address", text, "an IP address")),
        }
    }

    fn mac(&mut self) -> Result<MacAddr, CommandError> {
        let text = self.next("mac")?;
        text.parse()
            .map_err(|_| self.invalid("mac", text, "a MAC address"))
    }

    /// `addr/len`, IPv6 or IPv4 (mapped, length + 96), without host bits.
    fn prefix(&mut self) -> Result<Ipv6Prefix, CommandError> {
        let text = self.next("prefix")?;
        let expected = "a prefix without host bits";
        let parsed = text.split_once('/').and_then(|(addr, len)| {
            let len: u8 = len.parse().ok()?;
            if let Ok(addr) = addr.parse::<Ipv6Addr>() {
                return Ipv6Prefix::new(addr, len).ok();
            }
            let v4 = addr.parse::<Ipv4Addr>().ok()?;
            if len > 32 {
                return None;
            }
            Ipv6Prefix::new(v4.to_ipv6_mapped(), len + 96).ok()
        });
        parsed.ok_or_else(|| self.invalid("prefix", text, expected))
    }

    fn verbosity(&mut self) -> Result<Verbosity, CommandError> {
        match self.next("level")? {
            "none" => Ok(Verbosity::None),
            "verbose" => Ok(Verbosity::Verbose),
            "debug" => Ok(Verbosity::Debug),
            other => Err(self.invalid("level", other, "none, verbose or debug")),
        }
    }

    fn end(mut self) -> Result<(), CommandError> {
        match self.words.next() {
            None => Ok(()),
            Some(extra) => Err(CommandError::Extra {
                command: self.command,
                extra: quoted(extra),
            }),
        }
    }
}

impl Command {
    /// The command on the line `bytes` (up to its first `\n` or `\r`).
    pub fn parse(bytes: &[u8]) -> Result<Command, CommandError> {
        let line = bytes
            .split(|b| *b == b'\n' || *b == b'\r')
            .next()
            .unwrap_or_default();
        let line = std::str::from_utf8(line).map_err(|_| CommandError::NotText)?;
        let mut words = line.split_ascii_whitespace();
        let word = words.next().ok_or(CommandError::Empty)?;
        let command = Command::word(word).ok_or_else(|| CommandError::Unknown(quoted(word)))?;
        let mut args = Args { command, words };
        let parsed = match command {
            "get_clients" => Command::GetClients,
            "get_meshifs" => Command::GetMeshifs,
            "get_prefixes" => Command::GetPrefixes,
            "add_meshif" => Command::AddMeshif(args.interface()?),
            "del_meshif" => Command::DelMeshif(args.interface()?),
            "add_prefix" => Command::AddPrefix(args.prefix()?),
            "del_prefix" => Command::DelPrefix(args.prefix()?),
            "add_address" => {
                let addr = args.address(true)?;
                Command::AddAddress(addr, args.mac()?)
            }
            "del_address" => {
                let addr = args.address(true)?;
                Command::DelAddress(addr, args.mac()?)
            }
            "probe" => {
                let addr = args.address(false)?;
                Command::Probe(addr, args.mac()?)
            }
            "has_route" => Command::HasRoute(args.address(false)?),
            _ => Command::Verbosity(args.verbosity()?),
        };
        args.end()?;
        Ok(parsed)
    }

    /// The command word `word` as a static string, if it is one.
    fn word(word: &str) -> Option<&'static str> {
        const WORDS: [&str; 12] = [
            "get_clients",
            "get_meshifs",
            "add_meshif",
            "del_meshif",
            "get_prefixes",
            "add_prefix",
            "del_prefix",
            "add_address",
            "del_address",
            "probe",
            "has_route",
            "verbosity",
        ];
        WORDS.into_iter().find(|w| *w == word)
    }

    /// The command word, for logs and counters.
    pub const fn name(&self) -> &'static str {
        match self {
            Command::GetClients => "get_clients",
            Command::GetMeshifs => "get_meshifs",
            Command::AddMeshif(_) => "add_meshif",
            Command::DelMeshif(_) => "del_meshif",
            Command::GetPrefixes => "get_prefixes",
            Command::AddPrefix(_) => "add_prefix",
            Command::DelPrefix(_) => "del_prefix",
            Command::AddAddress(..) => "add_address",
            Command::DelAddress(..) => "del_address",
            Command::Probe(..) => "probe",
            Command::HasRoute(_) => "has_route",
            Command::Verbosity(_) => "verbosity",
        }
    }
}

impl std::fmt::Display for Command {
    /// The line a client would send for it (without the newline).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name();
        match self {
            Command::GetClients | Command::GetMeshifs | Command::GetPrefixes => f.write_str(name),
            Command::AddMeshif(i) | Command::DelMeshif(i) => write!(f, "{name} {i}"),
            Command::AddPrefix(p) | Command::DelPrefix(p) => write!(f, "{name} {p}"),
            Command::AddAddress(a, m) | Command::DelAddress(a, m) | Command::Probe(a, m) => {
                write!(f, "{name} {a} {m}")
            }
            Command::HasRoute(a) => write!(f, "{name} {a}"),
            Command::Verbosity(v) => {
                let v = match v {
                    Verbosity::None => "none",
                    Verbosity::Verbose => "verbose",
                    Verbosity::Debug => "debug",
                };
                write!(f, "{name} {v}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};

    fn parse(s: &str) -> Result<Command, CommandError> {
        Command::parse(s.as_bytes())
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_lines_gluon_and_respondd_send() {
        assert_eq!(parse("get_clients\n"), Ok(Command::GetClients));
        assert_eq!(parse("get_meshifs\n"), Ok(Command::GetMeshifs));
        assert_eq!(
            parse("add_meshif mesh-vpn\n"),
            Ok(Command::AddMeshif("mesh-vpn".into()))
        );
        assert_eq!(
            parse("del_meshif vx_mesh_lan\r\n"),
            Ok(Command::DelMeshif("vx_mesh_lan".into()))
        );
        // ddhcpd's lease hook: an IPv4 address and the client's MAC.
        assert_eq!(
            parse("add_address 10.1.2.3 02:00:00:00:01:00\n"),
            Ok(Command::AddAddress(
                "::ffff:10.1.2.3".parse().unwrap(),
                mac("02:00:00:00:01:00")
            ))
        );
    }

    #[test]
    fn every_command_with_its_arguments() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let m = mac("02:00:00:00:01:00");
        for (line, want) in [
            ("get_prefixes", Command::GetPrefixes),
            (
                "add_prefix 2001:db8::/64",
                Command::AddPrefix("2001:db8::/64".parse().unwrap()),
            ),
            (
                "del_prefix 10.0.0.0/8",
                Command::DelPrefix("::ffff:10.0.0.0/104".parse().unwrap()),
            ),
            (
                "del_address 2001:db8::1 02:00:00:00:01:00",
                Command::DelAddress(a, m),
            ),
            ("probe 2001:db8::1 02:00:00:00:01:00", Command::Probe(a, m)),
            ("has_route 2001:db8::1", Command::HasRoute(a)),
            ("verbosity none", Command::Verbosity(Verbosity::None)),
            ("verbosity verbose", Command::Verbosity(Verbosity::Verbose)),
            ("verbosity debug", Command::Verbosity(Verbosity::Debug)),
        ] {
            assert_eq!(parse(line), Ok(want.clone()), "{line}");
            // Printing gives a line that parses back to the same command.
            assert_eq!(parse(&want.to_string()), Ok(want), "{line}");
        }
    }

    #[test]
    fn blanks_and_line_ends_as_the_c_daemon_took_them() {
        assert_eq!(parse("  get_clients \t "), Ok(Command::GetClients));
        assert_eq!(
            parse("get_clients"),
            Ok(Command::GetClients),
            "EOF ends the line"
        );
        assert_eq!(
            parse("get_meshifs\rget_clients\n"),
            Ok(Command::GetMeshifs),
            "only the first line counts"
        );
        assert_eq!(
            parse("add_meshif   mesh0  "),
            Ok(Command::AddMeshif("mesh0".into()))
        );
    }

    #[test]
    fn what_crashed_or_fooled_the_c_daemon_is_an_error() {
        use CommandError::*;
        assert_eq!(parse(""), Err(Empty));
        assert_eq!(parse("\n"), Err(Empty));
        assert_eq!(parse("   \r\n"), Err(Empty));
        assert_eq!(
            parse("get_clientsXYZ"),
            Err(Unknown("get_clientsXYZ".into()))
        );
        assert_eq!(parse("GET_CLIENTS"), Err(Unknown("GET_CLIENTS".into())));
        assert!(matches!(
            parse("probe ::1"),
            Err(Missing {
                command: "probe",
                argument: "mac"
            })
        ));
        assert!(matches!(
            parse("verbosity"),
            Err(Missing {
                command: "verbosity",
                argument: "level"
            })
        ));
        assert!(matches!(
            parse("verbosity loud"),
            Err(Invalid {
                argument: "level",
                ..
            })
        ));
        assert!(matches!(
            parse("add_meshif"),
            Err(Missing {
                argument: "interface",
                ..
            })
        ));
        assert!(matches!(
            parse("add_meshif a_name_of_sixteen"),
            Err(Invalid {
                argument: "interface",
                ..
            })
        ));
        assert!(matches!(
            parse("add_meshif ../x"),
            Err(Invalid {
                argument: "interface",
                ..
            })
        ));
        assert!(matches!(
            parse("add_prefix 2001:db8::1/64"),
            Err(Invalid {
                argument: "prefix",
                ..
            })
        ));
        assert!(matches!(
            parse("add_prefix 2001:db8::/129"),
            Err(Invalid {
                argument: "prefix",
                ..
            })
        ));
        assert!(matches!(
            parse("add_prefix 10.0.0.0/33"),
            Err(Invalid {
                argument: "prefix",
                ..
            })
        ));
        assert!(matches!(
            parse("add_prefix 2001:db8::"),
            Err(Invalid {
                argument: "prefix",
                ..
            })
        ));
        assert!(matches!(
            parse("probe 10.0.0.1 02:00:00:00:01:00"),
            Err(Invalid {
                argument: "address",
                ..
            })
        ));
        assert!(matches!(
            parse("add_address 2001:db8::1 02:00:00:00:01"),
            Err(Invalid {
                argument: "mac",
                ..
            })
        ));
        assert!(matches!(
            parse("get_clients now"),
            Err(Extra {
                command: "get_clients",
                ..
            })
        ));
        assert_eq!(Command::parse(b"get_\xffclients"), Err(NotText));
    }

    #[test]
    fn error_lines_quote_at_most_a_few_characters() {
        let long = "x".repeat(2000);
        let err = parse(&long).unwrap_err().to_string();
        assert!(err.len() < 80, "{err}");
        let err = parse(&format!("verbosity {long}")).unwrap_err().to_string();
        assert!(err.len() < 120, "{err}");
        // Control characters are escaped, so an error is one line.
        let err = parse("\u{1b}[2J").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    // ===== property: random and damaged lines =====

    #[test]
    fn random_and_damaged_lines_never_panic_and_round_trip() {
        let seeds = [
            "get_clients\n",
            "get_meshifs\n",
            "add_meshif mesh0\n",
            "del_meshif mesh-vpn\n",
            "get_prefixes\n",
            "add_prefix fddd:1::/64\n",
            "del_prefix 10.0.0.0/8\n",
            "add_address 10.1.2.3 02:00:00:00:01:00\n",
            "del_address fddd:1::5 02:00:00:00:01:00\n",
            "probe fe80::1 02:00:00:00:01:00\n",
            "has_route fddd:1::5\n",
            "verbosity debug\n",
        ];
        let mut next = xorshift(0x5eed_c0de_0000_0012);
        let mut parsed = 0;
        for round in 0..20_000 {
            let bytes = damaged(seeds[round % seeds.len()].as_bytes(), &mut next);
            if let Ok(command) = Command::parse(&bytes) {
                parsed += 1;
                assert_eq!(
                    Command::parse(command.to_string().as_bytes()),
                    Ok(command.clone()),
                    "{bytes:?} printed as {command}"
                );
            }
        }
        assert!(parsed > 1000, "damage left too few commands: {parsed}");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Err(e) = Command::parse(&bytes) {
                let line = e.to_string();
                proptest::prop_assert!(!line.contains('\n') && !line.contains('\r'));
            }
        }
    }
}
