//! `--config FILE` of `mdbus publish` and `mdbus gateway`: every flag of
//! the command can come from a TOML file, and the command line overrides
//! it.
//!
//! The file has a table per command, its keys the commands' long flag
//! names (an annotated example: `contrib/mdbus.toml`):
//!
//! ```toml
//! [publish]
//! feed = "cffex"
//! rate = 200000
//! retain-bytes = "2GiB"
//!
//! [gateway]
//! feed = "cffex"
//! listen = "127.0.0.1:8080"
//! ```
//!
//! The file's settings become arguments put in front of the command line's
//! (the commands let a later flag override an earlier one), so a setting
//! means exactly what its flag means and is checked by the same parser.
//! Every key of both tables is checked whichever command reads the file: an
//! unknown table or key, a value of the wrong TOML type and a value the
//! flag's parser refuses are errors naming the file and the key (exit 2),
//! never ignored.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use clap::{ArgAction, CommandFactory};

use crate::Cli;

/// The commands that take `--config`, which are the file's tables.
const COMMANDS: [&str; 2] = ["publish", "gateway"];

/// `args` (the process arguments) with the settings of the `--config` file
/// of a `publish` or `gateway` command line put right after the command's
/// name; unchanged without `--config`. `Err` is the message for a bad file.
pub(crate) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(command) = args.get(1).and_then(|c| c.to_str()).filter(|c| COMMANDS.contains(c)) else {
        return Ok(args);
    };
    let Some(path) = config_path(&args[2..]) else {
        return Ok(args);
    };
    let settings = read(Path::new(&path))?;
    let mut expanded = args[..2].to_vec();
    expanded.extend(
        settings
            .into_iter()
            .find(|(c, _)| c == command)
            .map(|(_, a)| a)
            .unwrap_or_default(),
    );
    expanded.extend_from_slice(&args[2..]);
    Ok(expanded)
}

/// The value of `--config PATH` or `--config=PATH` (the last one given).
fn config_path(args: &[OsString]) -> Option<OsString> {
    let mut path = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            path = args.next().cloned();
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            path = Some(value.into());
        }
    }
    path
}

/// Reads and checks the file: the arguments each of its tables stands for.
fn read(path: &Path) -> Result<Vec<(String, Vec<OsString>)>, String> {
    let at = |what: String| format!("config {}: {what}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| at(e.to_string().trim_end().to_string()))?;
    let mut out = Vec::new();
    for (name, value) in table {
        if !COMMANDS.contains(&name.as_str()) {
            let what = match value {
                toml::Value::Table(_) => "table",
                _ => "key",
            };
            return Err(at(format!(
                "unknown {what} `{name}` at the top level: the settings go in the tables [publish] and [gateway]"
            )));
        }
        let toml::Value::Table(settings) = value else {
            return Err(at(format!("`{name}` must be a table ([{name}])")));
        };
        let args = arguments(&name, &settings).map_err(at)?;
        out.push((name, args));
    }
    Ok(out)
}

/// The arguments `settings` (the table of `command`) stand for, each value
/// checked by its flag's parser.
fn arguments(command: &str, settings: &toml::Table) -> Result<Vec<OsString>, String> {
    let mut cli = Cli::command();
    cli.build();
    let cmd = cli
        .find_subcommand(command)
        .unwrap_or_else(|| unreachable!("`{command}` is a subcommand"));
    let known = || {
        let mut names: Vec<&str> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !["config", "help"].contains(l))
            .collect();
        names.sort_unstable();
        names.join(", ")
    };
    let mut out = Vec::new();
    for (key, value) in settings {
        let at = |what: String| format!("[{command}] key `{key}`: {what}");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config" && key != "help")
            .ok_or_else(|| at(format!("unknown key; `mdbus {command}` takes {}", known())))?;
        let flag = format!("--{key}");
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match value {
                toml::Value::Boolean(true) => out.push(flag.into()),
                toml::Value::Boolean(false) => {}
                other => return Err(at(format!("expected true or false, found {}", kind(other)))),
            }
            continue;
        }
        let values = match value {
            toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => items.iter().collect(),
            toml::Value::Array(_) => return Err(at("takes one value, found an array".into())),
            one => vec![one],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => return Err(at(format!("expected a string or a number, found {}", kind(other)))),
            };
            // The flag alone on the command line of its command, no flag
            // required: the flag's own parser checks the value.
            cmd.clone()
                .no_binary_name(true)
                .mut_args(|a| a.required(false))
                .try_get_matches_from([OsStr::new(&flag), OsStr::new(&text)])
                .map_err(|e| at(clap_reason(&e)))?;
            out.push(flag.clone().into());
            out.push(text.into());
        }
    }
    Ok(out)
}

/// The TOML type of `value`, for an error.
fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// clap's message for a refused value, without its `error: ` prefix and
/// usage lines.
fn clap_reason(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// `--config FILE` of a command that reads one.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArg {
    /// Settings from this TOML file, table `[publish]` or `[gateway]`, keys
    /// the long flag names (`contrib/mdbus.toml`); flags given here
    /// override the file. An unknown key or a bad value is an error.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
}

impl ConfigArg {
    /// Says on stderr where the settings came from (a service's log).
    pub(crate) fn announce(&self, command: &str) {
        if let Some(path) = &self.config {
            eprintln!("mdbus {command}: settings from {}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn settings_go_before_the_command_line() {
        let file = write(
            "[publish]\nfeed = \"a\"\nrate = 5000\nsynthetic = true\nno-board = false\nduration = 0.5\n\
             retain-bytes = \"1MiB\"\n[gateway]\nfeed = \"g\"\n",
        );
        let path = file.path().to_str().unwrap();
        let got = expand(args(&["mdbus", "publish", "--config", path, "--rate", "7"])).unwrap();
        let mut want = args(&["mdbus", "publish"]);
        // toml::Table keeps its keys sorted.
        want.extend(args(&[
            "--duration",
            "0.5",
            "--feed",
            "a",
            "--rate",
            "5000",
            "--retain-bytes",
            "1MiB",
            "--synthetic",
        ]));
        want.extend(args(&["--config", path, "--rate", "7"]));
        assert_eq!(got, want);
    }

    #[test]
    fn the_annotated_example_is_valid_and_sets_every_flag() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib/mdbus.toml");
        for command in COMMANDS {
            let got = expand(args(&["mdbus", command, "--config", example])).unwrap();
            // What the file put between the command and its `--config`.
            let injected = &got[2..got.len() - 2];
            let given: Vec<&str> = injected.iter().filter_map(|a| a.to_str()?.strip_prefix("--")).collect();
            let mut cli = Cli::command();
            cli.build();
            // Every flag but the commented-out ones (`cpu`, `token`),
            // the empty `allow-origin` list and the `false` switches.
            for arg in cli.find_subcommand(command).unwrap().get_arguments() {
                let long = arg.get_long().unwrap();
                let absent = [
                    "config",
                    "help",
                    "cpu",
                    "token",
                    "allow-origin",
                    "no-board",
                    "no-write-zeros",
                    "no-large-folios",
                ]
                .contains(&long);
                assert_eq!(given.contains(&long), !absent, "{command} --{long}");
            }
        }
    }

    #[test]
    fn without_config_or_for_other_commands_nothing_changes() {
        let plain = args(&["mdbus", "publish", "--feed", "x"]);
        assert_eq!(expand(plain.clone()).unwrap(), plain);
        let other = args(&["mdbus", "replay", "--config", "/nonexistent"]);
        assert_eq!(expand(other.clone()).unwrap(), other);
    }

    #[test]
    fn a_bad_key_type_value_or_table_names_the_file_and_the_key() {
        for (text, needle) in [
            ("[publish]\nspeed = 3\n", "[publish] key `speed`: unknown key"),
            (
                "[publish]\nrate = \"fast\"\n",
                "[publish] key `rate`: invalid value 'fast'",
            ),
            (
                "[publish]\nrate = true\n",
                "[publish] key `rate`: expected a string or a number, found a boolean",
            ),
            (
                "[publish]\nsynthetic = \"yes\"\n",
                "[publish] key `synthetic`: expected true or false",
            ),
            (
                "[publish]\nsync = \"sometimes\"\n",
                "[publish] key `sync`: invalid value 'sometimes'",
            ),
            (
                "[publish]\nfeed = [\"a\", \"b\"]\n",
                "[publish] key `feed`: takes one value",
            ),
            ("[gateway]\nnope = 1\n", "[gateway] key `nope`: unknown key"),
            ("[subscribe]\nfeed = \"a\"\n", "unknown table `subscribe`"),
            ("feed = \"a\"\n", "unknown key `feed` at the top level"),
            ("[publish\n", "TOML parse error"),
        ] {
            let file = write(text);
            let path = file.path().to_str().unwrap();
            let err = expand(args(&["mdbus", "publish", "--config", path])).unwrap_err();
            assert!(err.contains(&format!("config {path}: ")), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let err = expand(args(&["mdbus", "gateway", "--config=/nonexistent/mdbus.toml"])).unwrap_err();
        assert!(err.starts_with("config /nonexistent/mdbus.toml: "), "{err}");
    }
}
