"""The benchmark suite's parts: measure (load tools, /proc), stacks, scenarios, report."""
