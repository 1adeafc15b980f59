"""Entry point registered under ``pytest11``; intentionally empty and import-free until the plugin lands."""
