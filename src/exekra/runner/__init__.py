"""The runner agent: authenticates to the hub, heartbeats, polls for work and runs one execution at a time.

Import the submodules you need (`exekra.runner.config`, `exekra.runner.agent`); this package itself imports
nothing, so the worker child process starts fast.
"""
