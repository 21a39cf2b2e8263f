//! Examples in the help of both binaries, and the audit their unit tests run on it: every
//! option documented, every command with an example. Behind the `cli` feature, so the
//! library's other users do not link clap.

/// `cmd` with `examples` (a command path, and its example lines) as the `after_help` of the
/// commands they name.
pub fn with_examples(
    mut cmd: clap::Command,
    examples: &'static [(&'static [&'static str], &'static str)],
) -> clap::Command {
    fn at(cmd: clap::Command, path: &[&str], text: &'static str) -> clap::Command {
        match path.split_first() {
            None => cmd.after_help(format!("Examples:\n{text}")),
            Some((first, rest)) => {
                let rest = rest.to_vec();
                cmd.mut_subcommand(*first, move |sub| at(sub, &rest, text))
            }
        }
    }
    for (path, text) in examples {
        cmd = at(cmd, path, text);
    }
    cmd
}

/// Options and arguments without help text, and commands without a description or an
/// example (`after_help`), anywhere under `cmd`: one line each.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    walk(cmd, "", &mut out);
    out
}

fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    let path = format!("{path} {}", cmd.get_name()).trim().to_owned();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: `{id}` has no help text"));
        }
    }
    if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
        out.push(format!("{path}: no description"));
    }
    let subcommands: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if subcommands.is_empty()
        && cmd.get_after_help().is_none()
        && cmd.get_after_long_help().is_none()
    {
        out.push(format!("{path}: no example (after_help)"));
    }
    for sub in subcommands {
        walk(sub, &path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_finds_what_is_missing_and_examples_fill_it() {
        let cmd = || {
            clap::Command::new("tool")
                .about("a tool")
                .subcommand(
                    clap::Command::new("run")
                        .about("runs")
                        .arg(clap::Arg::new("fast").long("fast")),
                )
                .subcommand(clap::Command::new("stop"))
        };
        assert_eq!(
            undocumented(&cmd()),
            [
                "tool run: `fast` has no help text",
                "tool run: no example (after_help)",
                "tool stop: no description",
                "tool stop: no example (after_help)"
            ]
        );
        const EXAMPLES: &[(&[&str], &str)] =
            &[(&["run"], "  tool run"), (&["stop"], "  tool stop")];
        let documented = with_examples(cmd(), EXAMPLES);
        assert_eq!(
            undocumented(&documented),
            [
                "tool run: `fast` has no help text",
                "tool stop: no description"
            ]
        );
    }
}
