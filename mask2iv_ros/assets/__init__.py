"""Embedded assets: the default model (default_model/) and the demo bag (demo_episode/)."""
