// The command line of `ait-convert` (every converter and generator of convert.h), and its
// `idx` command, which `ait convert idx` runs too.
#pragma once
#include <string>
#include <vector>

#include "apps/cli.h"

namespace ait {

// ait-convert's commands: triangle, sort-of-clevr, cifar10, cifar100, npy, folder, idx.
const cli::Program& convert_program();

// The IDX converter's options and handler under another name: `ait convert` takes the format
// ("idx") as its one positional argument and then runs the same code as `ait-convert idx`.
cli::Subcommand idx_alias(const std::string& name);

// "a,b,c" into its names; an empty or repeated name is a cli::UsageError naming `option`.
std::vector<std::string> parse_class_list(const std::string& text, const std::string& option);

}  // namespace ait
