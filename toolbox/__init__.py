"""bosun's toolbox: one module per command group; each command is a typed function."""
