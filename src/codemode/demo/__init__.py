"""Bundled demo MCP servers: the embedded default configuration.

``inventory`` is a small shop back office (a catalog of thousands of products, orders with nested
customer/address/line items, enums and optional fields); ``notes`` is a team knowledge base (search,
tags, notes linking to products). Both are deterministic, so tests and benchmarks get the same answers.
Run one with ``python -m codemode.demo.inventory``.
"""
