// `--config FILE` for the subcommands that offer it: a TOML file whose keys are the command's
// long flag names (with - or _, without the dashes), e.g. `epochs = 1`, `model = "abmil"`,
// `shots = 4`, `overwrite = true`, `slides = ["a.svs", "b.svs"]`, optionally under a
// `[<command>]` table. Flags given on the command line win over the file. A missing or
// unreadable file, a line that is not `key = value`, an unknown key, or a value of the wrong
// shape is an error naming the file, the line and the key. The subset of TOML read: comments,
// one table header (the command's own), basic and literal strings, integers, floats, booleans,
// and one-line arrays of those. (CLI11's own config reader applies a subcommand's file only to
// keys written `train.epochs`, and ignores unknown keys: a run whose config is silently ignored
// cannot be reproduced, so the file is read here and turned into flags before parsing.)
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace lm::app {

// The command-line arguments after the subcommand's name with the file's keys appended as flags
// (those not already on the command line); `args` unchanged when it has no --config.
std::vector<std::string> expand_config_file(const CLI::App& command, const std::vector<std::string>& args);

}  // namespace lm::app
