"""The embedded example cases (TOML files read with importlib.resources)."""

__all__: list[str] = []
