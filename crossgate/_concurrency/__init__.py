"""The machinery behind `crossgate.concurrency`: pools, loops, thread sensitivity, iterators.

Private: import the public names from `crossgate.concurrency`.
"""
