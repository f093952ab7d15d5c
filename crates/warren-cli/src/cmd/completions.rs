//! `warren completions`: a shell completion script on stdout, generated from the
//! command's own clap definition so it always matches the flags this binary has.

use std::io::Write;

use clap_complete::Shell;

/// Arguments of `warren completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = INSTALL_HELP)]
pub struct Args {
    /// The shell to write the script for.
    shell: Shell,
}

/// Where each shell looks for completion scripts.
const INSTALL_HELP: &str = "\
Install (then open a new shell):
  bash  warren completions bash > ~/.local/share/bash-completion/completions/warren
  zsh   warren completions zsh > \"${fpath[1]}/_warren\"
  fish  warren completions fish > ~/.config/fish/completions/warren.fish";

/// Writes the completion script for `args.shell` to stdout. `command` is the whole
/// `warren` command (`Cli::command()`).
pub fn run(args: Args, mut command: clap::Command) -> Result<(), String> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the completion script to stdout: {e}"))
}
