"""What every stage consults: the settings (config.py), on or off and why (policy.py), and the
remote config (remote_config.py)."""
