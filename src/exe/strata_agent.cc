// strata-agent: the host agent binary. Everything lives in the agent libraries.
#include "strata/agent/service/agent_cli.h"

int main(int argc, char** argv) { return strata::agent::cli::agent_main(argc, argv); }
