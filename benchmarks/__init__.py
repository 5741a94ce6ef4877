"""codemode benchmarks: token savings and speed, each measured against a baseline in the same run."""
