//! `docs/reference/configuration.md` is the CLI definition, rendered: every
//! command, flag, environment variable, default and help text.

use clap::{Arg, ArgAction, Command, CommandFactory};
use portcullis::cli::Cli;

use super::{cell, prose};

#[test]
fn the_configuration_page_is_the_cli_definition() {
    expect_test::expect_file!["../../../docs/reference/configuration.md"]
        .assert_eq(&render(&Cli::command()));
}

#[test]
fn every_flag_and_command_has_help() {
    let mut missing = Vec::new();
    walk(&Cli::command(), "portcullis", &mut |path, command| {
        if path != "portcullis" && command.get_about().is_none() {
            missing.push(format!("the command `{path}`"));
        }
        for arg in documented_args(command) {
            if arg.get_help().is_none() {
                missing.push(format!("`{}` of `{path}`", flag(arg)));
            }
        }
    });
    assert!(
        missing.is_empty(),
        "undocumented (give each a doc comment): {}",
        missing.join(", ")
    );
}

const PRELUDE: &str = "# Configuration

Generated from the command-line definition (`src/cli/`) by the test
`reference::configuration`; a flag added without help fails it. Every flag
can also be given as the environment variable beside it; a flag on the
command line wins. Values that can hold secrets are never echoed.
`PORTCULLIS_LOG` (or `RUST_LOG`) sets the log filter, `info` by default;
`--log-format` applies to every command. How the server's knobs trade
against each other: [Performance](../operations/performance.md#tuning).
";

fn render(root: &Command) -> String {
    let mut page = String::from(PRELUDE);
    walk(root, "portcullis", &mut |path, command| {
        page.push_str(&format!("\n## `{path}`\n\n"));
        if let Some(about) = command.get_long_about().or(command.get_about()) {
            page.push_str(&format!("{}\n\n", prose(about.to_string().trim())));
        }
        let args: Vec<&Arg> = documented_args(command)
            .filter(|arg| path == "portcullis" || !arg.is_global_set())
            .collect();
        if args.is_empty() {
            return;
        }
        page.push_str("| flag | environment | default | meaning |\n|---|---|---|---|\n");
        for arg in args {
            page.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                flag(arg),
                arg.get_env()
                    .map(|env| format!("`{}`", env.to_string_lossy()))
                    .unwrap_or_default(),
                default(arg),
                meaning(arg),
            ));
        }
    });
    page
}

/// Depth first, in the order `--help` lists the commands.
fn walk(command: &Command, path: &str, visit: &mut dyn FnMut(&str, &Command)) {
    visit(path, command);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        walk(sub, &format!("{path} {}", sub.get_name()), visit);
    }
}

fn documented_args(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| {
        !arg.is_hide_set() && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
    })
}

fn flag(arg: &Arg) -> String {
    match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => {
            format!("--{long} <{}>", value_name(arg))
        }
        Some(long) => format!("--{long}"),
        None => format!("<{}>", value_name(arg)),
    }
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(ToString::to_string)
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

fn default(arg: &Arg) -> String {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|value| format!("`{}`", value.to_string_lossy()))
        .collect();
    if values.is_empty() {
        if arg.is_required_set() {
            "required".into()
        } else {
            String::new()
        }
    } else {
        values.join(", ")
    }
}

fn meaning(arg: &Arg) -> String {
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let choices: Vec<String> = if arg.get_action().takes_values() {
        arg.get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .map(|value| format!("`{}`", value.get_name()))
            .collect()
    } else {
        Vec::new()
    };
    if choices.is_empty() {
        cell(&help)
    } else {
        cell(&format!("{help} One of {}.", choices.join(", ")))
    }
}
