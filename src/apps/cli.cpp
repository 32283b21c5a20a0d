#include "apps/cli.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace ait::cli {

namespace {

bool is_help(const std::string& a) { return a == "--help" || a == "-h"; }

bool needs_arguments(const Command& c) {
  if (!c.positionals.empty()) return true;
  for (const Option& o : c.options)
    if (o.flags & kRequired) return true;
  return false;
}

std::string option_label(const Option& o) { return "--" + o.name + (o.value.empty() ? "" : " " + o.value); }

}  // namespace

// ------------------------------------------------------------------------------------------
// Usage text

std::string usage(const Command& c) {
  std::string out = "usage: " + c.name;
  for (const std::string& p : c.positionals) out += " " + p;
  for (const Option& o : c.options)
    if (o.flags & kRequired) out += " " + option_label(o);
  out += " [options]\n";
  if (!c.summary.empty()) out += c.summary + "\n";
  out += "\noptions:\n";
  // Help texts line up in one column; a label too long for it gets a line of its own.
  const size_t kMaxWidth = 24;
  size_t width = 10;  // "-h, --help"
  for (const Option& o : c.options) width = std::min(kMaxWidth, std::max(width, option_label(o).size()));
  auto line = [&](const std::string& label, const std::string& help) {
    if (label.size() > width) out += "  " + label + "\n" + std::string(width + 4, ' ') + help + "\n";
    else out += "  " + label + std::string(width - label.size() + 2, ' ') + help + "\n";
  };
  for (const Option& o : c.options) {
    std::string help = o.help;
    if (o.flags & kRequired) help += " (required)";
    if (o.flags & kRepeatable) help += " (repeatable)";
    line(option_label(o), help);
  }
  line("-h, --help", "print this help and exit");
  if (!c.notes.empty()) out += "\n" + c.notes + (c.notes.back() == '\n' ? "" : "\n");
  return out;
}

std::string usage(const Program& p) {
  std::string out = "usage: " + p.name + " COMMAND [options]\n" + p.summary + "\n\ncommands:\n";
  size_t width = 0;
  std::vector<std::string> words;
  for (const Subcommand& s : p.commands) {
    words.push_back(s.spec.name.substr(s.spec.name.rfind(' ') + 1));
    width = std::max(width, words.back().size());
  }
  for (size_t i = 0; i < p.commands.size(); ++i)
    out += "  " + words[i] + std::string(width - words[i].size() + 2, ' ') + p.commands[i].spec.summary + "\n";
  out += "\n'" + p.name + " COMMAND --help' lists a command's options.\n";
  if (!p.notes.empty()) out += "\n" + p.notes + (p.notes.back() == '\n' ? "" : "\n");
  return out;
}

// ------------------------------------------------------------------------------------------
// Parsing

Args::Args(const Command& command, const std::vector<std::string>& args) : command_(&command) {
  for (const std::string& a : args)
    if (is_help(a)) {
      help_ = true;
      return;
    }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 1 && a[0] == '-') parse_option(args, i);
    else positionals_.push_back(a);
  }
  if (positionals_.size() > command.positionals.size())
    fail("unexpected argument '" + positionals_[command.positionals.size()] + "'");
  // A placeholder in brackets ("[FILE]") may be left out; only the ones before it are required.
  if (positionals_.size() < command.positionals.size() && command.positionals[positionals_.size()][0] != '[')
    fail("missing " + command.positionals[positionals_.size()]);
  for (const Option& o : command.options)
    if ((o.flags & kRequired) && !has(o.name)) fail("missing required option " + option_label(o));
}

// The option at args[i], with its value in "--name=value" or in args[i + 1] (then i moves on).
void Args::parse_option(const std::vector<std::string>& args, size_t& i) {
  const std::string& a = args[i];
  if (a.rfind("--", 0) != 0 || a.size() == 2) fail("unknown option '" + a + "'");
  const size_t eq = a.find('=');
  const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
  const Option* option = nullptr;
  for (const Option& o : command_->options)
    if (o.name == name) option = &o;
  if (!option) fail("unknown option --" + name);
  if (option->value.empty()) {
    if (eq != std::string::npos) fail("option --" + name + " is a flag and takes no value");
    add(*option, "");
  } else if (eq != std::string::npos) {
    add(*option, a.substr(eq + 1));
  } else {
    // A following "--x" is taken for the next option, not for a value (write --name=--x).
    if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
      fail("option --" + name + " needs a value (" + option->value + ")");
    add(*option, args[++i]);
  }
}

void Args::add(const Option& option, const std::string& value) {
  std::vector<std::string>& v = values_[option.name];
  if (!v.empty() && !(option.flags & kRepeatable)) fail("option --" + option.name + " given more than once");
  v.push_back(value);
}

const Option& Args::declared(const std::string& name) const {
  for (const Option& o : command_->options)
    if (o.name == name) return o;
  // A handler asking for an option its table does not declare is a bug, not a usage error.
  throw std::logic_error(command_->name + ": option --" + name + " is not declared");
}

bool Args::has(const std::string& name) const {
  declared(name);
  return values_.count(name) != 0;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  declared(name);
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Args::all(const std::string& name) const {
  declared(name);
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Args::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') fail("option --" + name + ": '" + text + "' is not an integer");
  if (errno == ERANGE || v < lo || v > hi) {  // ERANGE: a whole number beyond 64 bits, out of any range
    std::string range = lo == INT64_MIN   ? "at most " + std::to_string(hi)
                        : hi == INT64_MAX ? "at least " + std::to_string(lo)
                                          : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    fail("option --" + name + ": " + text + " is out of range (must be " + range + ")");
  }
  return v;
}

double Args::real(const std::string& name, double fallback, double lo, double hi, bool above_lo) const {
  if (!has(name)) return fallback;
  const std::string text = get(name);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v) || (errno == ERANGE && std::fabs(v) > 1))
    fail("option --" + name + ": '" + text + "' is not a finite number");
  if (!((above_lo ? v > lo : v >= lo) && v <= hi)) {  // written so that NaN would fail too
    auto num = [](double x) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", x);
      return std::string(buf);
    };
    std::string range = (above_lo ? "above " : "at least ") + num(lo);
    if (lo == -HUGE_VAL) range = "at most " + num(hi);
    else if (hi != HUGE_VAL) range += " and at most " + num(hi);
    fail("option --" + name + ": " + text + " is out of range (must be " + range + ")");
  }
  return v;
}

std::string Args::choice(const std::string& name, const std::vector<std::string>& choices,
                         const std::string& fallback) const {
  const std::string v = get(name, fallback);
  std::string list;
  for (const std::string& c : choices) {
    if (c == v) return v;
    list += (list.empty() ? "" : ", ") + c;
  }
  fail("option --" + name + ": '" + v + "' is not one of " + list);
}

void Args::fail(const std::string& message) const { throw UsageError(message); }

// ------------------------------------------------------------------------------------------
// Running

int run_command(const Command& command, const Handler& run, const std::vector<std::string>& args) {
  const char* name = command.name.c_str();
  if (args.empty() && needs_arguments(command)) {
    std::fputs(usage(command).c_str(), stderr);
    return kExitUsage;
  }
  try {
    Args a(command, args);
    if (a.help()) {
      std::fputs(usage(command).c_str(), stdout);
      return kExitOk;
    }
    return run(a);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n('%s --help' lists the options)\n", name, e.what(), name);
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", name);
  } catch (const std::logic_error& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", name, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
  }
  return kExitFailure;
}

int run_program(const Program& program, const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(usage(program).c_str(), stderr);
    return kExitUsage;
  }
  if (is_help(args[0]) || args[0] == "help") {
    std::fputs(usage(program).c_str(), stdout);
    return kExitOk;
  }
  for (const Subcommand& s : program.commands)
    if (s.spec.name == program.name + " " + args[0])
      return run_command(s.spec, s.run, std::vector<std::string>(args.begin() + 1, args.end()));
  std::fprintf(stderr, "%s: unknown command '%s'\n('%s --help' lists the commands)\n", program.name.c_str(),
               args[0].c_str(), program.name.c_str());
  return kExitUsage;
}

std::vector<std::string> arguments(int argc, char** argv) {
  return std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + std::max(argc, 1));
}

}  // namespace ait::cli
