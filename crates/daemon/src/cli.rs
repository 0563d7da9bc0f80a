//! The command line every daemon accepts.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::DaemonInfo;

/// Flags common to all daemons. Flags override the configuration file and
/// the environment.
#[derive(Debug, Clone, Default, Parser)]
#[command(version)]
pub struct DaemonArgs {
    /// Configuration file [default: /etc/l3roamd/l3roamd.toml]
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// UNIX socket to serve (overrides <section>.socket)
    #[arg(short = 's', long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Log more: -v for debug, -vv for trace
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Log at debug level (same as -v)
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
}

impl DaemonArgs {
    /// How many levels above the configured log level to log: 0, 1 or 2.
    pub fn verbosity(&self) -> u8 {
        self.verbose.max(u8::from(self.debug))
    }
}

/// Parses the command line of daemon `info`; `args[0]` is the program name.
pub fn parse(info: DaemonInfo, args: Vec<OsString>) -> Result<DaemonArgs, clap::Error> {
    let command = DaemonArgs::command()
        .name(info.name)
        .bin_name(info.name)
        .about(info.about);
    let matches = command.try_get_matches_from(args)?;
    DaemonArgs::from_arg_matches(&matches)
}
