"""Tiny MCP servers used as fixed-cost baselines by the speed benchmarks."""
