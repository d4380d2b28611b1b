//! The `mdbus` command line; see `mdbus --help`.

fn main() -> std::process::ExitCode {
    mdbus_cli::main()
}
