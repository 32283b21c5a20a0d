// ait-convert: builds the project's dataset files (src/io/dataset.h) from public formats, or
// generates the synthetic tasks. The commands and their options are in convert_cli.cpp;
// `ait-convert --help` lists them.
#include "apps/convert_cli.h"

int main(int argc, char** argv) {
  return ait::cli::run_program(ait::convert_program(), ait::cli::arguments(argc, argv));
}
