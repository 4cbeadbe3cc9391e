"""The pieces of `--mode=report`: finding a task's runs (discover), the environment, the commands
rebuilt from run configs (commands), the report's figures (figures) and its sections (sections)."""
