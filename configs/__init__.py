"""The task configs, one `<task>.py` per task: `--config esc50` or `--config configs/esc50.py`.

Installed as the package `jaxdl.configs` (setup.py), where `jaxdl.config.CONFIG_DIR` finds them.
"""
