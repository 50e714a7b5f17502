"""One module per command group; `batchctl.registry.MODULES` says which defines each command.
Empty on purpose: importing the package must not import every command (start-up time)."""
