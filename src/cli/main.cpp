// strata: the command line (run_cli.cpp), with no fault hooks.
#include "strata/cli/run_cli.hpp"

int main(int argc, char** argv) { return strata::cli::run_cli(argc, argv); }
