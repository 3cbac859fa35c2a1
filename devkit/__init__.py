"""What the test suite and the benchmarks share: real stores, agents, X servers and records to drive them.

Not a product package (it is not installed): ``store_kit`` (a store process, simulated agents and
stewards, PostgreSQL), ``xserver`` (a real Xvfb), ``factories`` (grants and window records) and
``components`` (skip on a laptop, fail under CI when a component is missing).
"""
