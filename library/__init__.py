"""bosun's library: orchestration (config, env, run, toolbox, ci) and the engines."""
