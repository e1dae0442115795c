"""What every scenario of the benchmark runs on: the CLI, the plan, the load generator, Serve,
CPU accounting, the stores, statistics and the one report writer."""
