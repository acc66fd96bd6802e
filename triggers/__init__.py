"""Change-stream triggers (webhooks, functions) on top of the log.

Nothing lives here yet: see the open triggers issue. The package exists so
the layering (triggers -> store -> streams) is visible from the start.
"""
