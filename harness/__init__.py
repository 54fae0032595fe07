"""Chaos harness for message-dispatch stacks: workload, history, checkers, schedules, runner, plugin."""
