// The command lines of ait, ait-convert, ait-export and ait-clevr-report. Each command
// declares its options once, in a table (name, value or flag, repeatable, required, help);
// parsing checks the arguments against that table and --help prints a usage generated from
// it. Exit statuses: 0 success (and --help), 1 an error in the work itself (a bad file, a
// model that does not fit), 2 a usage error (unknown or repeated option, missing or bad value).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace ait::cli {

constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2;

// A mistake in the command line itself; reported with the command's name and status 2.
struct UsageError : Error {
  using Error::Error;
};

enum OptionFlags : unsigned { kRequired = 1u, kRepeatable = 2u };

struct Option {
  Option(std::string name_, std::string value_, std::string help_, unsigned flags_ = 0)
      : name(std::move(name_)), value(std::move(value_)), help(std::move(help_)), flags(flags_) {}
  std::string name;   // without the leading "--"
  std::string value;  // the value's placeholder in the usage ("FILE", "N"); empty for a flag
  std::string help;
  unsigned flags = 0;  // OptionFlags
};

struct Command {
  Command(std::string name_, std::string summary_, std::vector<Option> options_,
          std::vector<std::string> positionals_ = {}, std::string notes_ = "")
      : name(std::move(name_)),
        summary(std::move(summary_)),
        options(std::move(options_)),
        positionals(std::move(positionals_)),
        notes(std::move(notes_)) {}
  std::string name;     // as typed: "ait train", "ait-convert npy"
  std::string summary;  // one line, for the program's list of commands
  std::vector<Option> options;
  std::vector<std::string> positionals;  // placeholders of the positional arguments ("[X]": optional, last)
  std::string notes;                     // more text for --help, after the options
};

// "usage: NAME POSITIONALS --required VALUE ... [options]", the summary, one line per option
// and the notes.
std::string usage(const Command& command);

// The arguments of one command, checked against its table.
class Args {
public:
  // Throws UsageError for an unknown option, a repeated non-repeatable one, a flag given a
  // value, a missing value, a missing required option or a wrong number of positionals.
  // "--help" or "-h" anywhere sets help() instead and checks nothing.
  Args(const Command& command, const std::vector<std::string>& args);

  bool help() const { return help_; }
  const Command& command() const { return *command_; }
  bool has(const std::string& name) const;
  // The value (the last one of a repeatable option), or `fallback` when absent.
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& name) const;  // every value, in order
  const std::vector<std::string>& positionals() const { return positionals_; }
  // A decimal integer in [lo, hi]; anything else is a UsageError naming the option and text.
  int64_t integer(const std::string& name, int64_t fallback, int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const;
  // A finite decimal number in [lo, hi], or in (lo, hi] when `above_lo`; anything else is a
  // UsageError naming the option and text.
  double real(const std::string& name, double fallback, double lo = -HUGE_VAL, double hi = HUGE_VAL,
              bool above_lo = false) const;
  // One of `choices`.
  std::string choice(const std::string& name, const std::vector<std::string>& choices,
                     const std::string& fallback) const;
  // Throws UsageError with `message` (the runner adds the command's name).
  [[noreturn]] void fail(const std::string& message) const;

private:
  const Option& declared(const std::string& name) const;
  void add(const Option& option, const std::string& value);
  void parse_option(const std::vector<std::string>& args, size_t& i);

  const Command* command_;
  bool help_ = false;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
};

using Handler = std::function<int(const Args&)>;

struct Subcommand {
  Command spec;
  Handler run;
};

struct Program {
  std::string name;     // "ait"
  std::string summary;  // what the program is for
  std::vector<Subcommand> commands;
  std::string notes;  // more text for the program's --help
};

// The program's usage: the commands with their summaries, and how to see a command's options.
std::string usage(const Program& program);

// Runs one command: parses `args` (what follows the command's name), prints the usage for
// --help, else calls `run`. Errors are printed as "NAME: message" on stderr: a UsageError
// returns kExitUsage, any other exception kExitFailure.
int run_command(const Command& command, const Handler& run, const std::vector<std::string>& args);
// Runs a program with subcommands: `args` starts with the command's name. No arguments prints
// the usage on stderr (status 2); "--help", "-h" or "help" prints it on stdout (status 0).
int run_program(const Program& program, const std::vector<std::string>& args);
// argv[1..argc) as strings, for main().
std::vector<std::string> arguments(int argc, char** argv);

}  // namespace ait::cli
