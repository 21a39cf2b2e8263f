//! Examples in the help of both binaries, and the audit their unit tests run on it: every
//! option documented, every command with an example; subcommands whose arguments are built
//! only when used. Behind the `cli` feature, so the library's other users do not link clap.

/// A subcommand whose name, description and examples are known at once and whose arguments
/// are added only when it is parsed or its help is printed (clap's `Command::defer`).
///
/// Why: clap's derive builds every subcommand's arguments before parsing anything. For
/// `sixmap-probe measure traceroute` that was more than half the instructions of the whole
/// run (building, then dropping, the arguments of all 15 commands), which a one-shot
/// measurement pays on every start.
#[derive(Debug, Clone, Copy)]
pub struct LazySubcommand {
    pub name: &'static str,
    /// One line, shown in the parent's list of commands and at the top of the command's help.
    pub about: &'static str,
    /// Example lines shown under the command's help ("" for a command with subcommands).
    pub examples: &'static str,
    /// Adds the arguments (and any subcommands) when the command is built.
    pub args: fn(clap::Command) -> clap::Command,
}

/// `cmd` with `subcommands` added, each built only when used; a subcommand is required.
pub fn with_lazy_subcommands(
    cmd: clap::Command,
    subcommands: &'static [LazySubcommand],
) -> clap::Command {
    subcommands
        .iter()
        .fold(cmd, |cmd, sub| {
            let mut command = clap::Command::new(sub.name)
                .about(sub.about)
                .defer(sub.args);
            if !sub.examples.is_empty() {
                command = command.after_help(format!("Examples:\n{}", sub.examples));
            }
            cmd.subcommand(command)
        })
        // What the derive sets for a required `#[command(subcommand)]`.
        .subcommand_required(true)
        .arg_required_else_help(true)
}

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
/// example (`after_help`), anywhere under `cmd` (lazy subcommands included): one line each.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut cmd = cmd.clone();
    // Runs every deferred part, so lazy subcommands are audited with their arguments.
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "", &mut out);
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
    fn lazy_subcommands_get_their_arguments_only_when_used() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RUN_BUILT: AtomicUsize = AtomicUsize::new(0);
        static STOP_BUILT: AtomicUsize = AtomicUsize::new(0);
        fn run_args(cmd: clap::Command) -> clap::Command {
            RUN_BUILT.fetch_add(1, Ordering::SeqCst);
            cmd.arg(
                clap::Arg::new("fast")
                    .long("fast")
                    .action(clap::ArgAction::SetTrue)
                    .help("goes fast"),
            )
        }
        fn stop_args(cmd: clap::Command) -> clap::Command {
            STOP_BUILT.fetch_add(1, Ordering::SeqCst);
            cmd.arg(clap::Arg::new("now").long("now").help("at once"))
        }
        static SUBCOMMANDS: [LazySubcommand; 2] = [
            LazySubcommand {
                name: "run",
                about: "runs",
                examples: "  tool run --fast",
                args: run_args,
            },
            LazySubcommand {
                name: "stop",
                about: "stops",
                examples: "  tool stop --now 1",
                args: stop_args,
            },
        ];
        let cmd =
            || with_lazy_subcommands(clap::Command::new("tool").about("a tool"), &SUBCOMMANDS);
        let built = || {
            (
                RUN_BUILT.load(Ordering::SeqCst),
                STOP_BUILT.load(Ordering::SeqCst),
            )
        };

        let help = cmd().render_help().to_string();
        assert!(help.contains("runs") && help.contains("stops"), "{help}");
        assert_eq!(built(), (0, 0), "listing the commands builds none of them");

        let matches = cmd()
            .try_get_matches_from(["tool", "run", "--fast"])
            .expect("a valid command line");
        let run = matches.subcommand_matches("run").expect("run was given");
        assert!(run.get_flag("fast"));
        assert_eq!(built(), (1, 0), "only the command given is built");

        let error = cmd()
            .try_get_matches_from(["tool", "stop", "--fast"])
            .expect_err("--fast is run's, not stop's");
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        let error = cmd()
            .try_get_matches_from(["tool"])
            .expect_err("a command is required");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );

        assert!(
            undocumented(&cmd()).is_empty(),
            "{:?}",
            undocumented(&cmd())
        );
        let (run, stop) = built();
        assert!(run >= 2 && stop >= 2, "the audit sees every argument");
    }

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
