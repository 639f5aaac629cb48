"""Pure domain code: values, rules and the rebalance maths. No I/O, no async."""
