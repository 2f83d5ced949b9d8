"""Plugins: the interfaces built-in and third-party plugins provide, their discovery, and the runner.

Plugins live in ``lrrd_plugins/`` (and in configured extra folders) and are found with
``twisted.plugin.getPlugins``; they import only this package's interfaces and helpers.
"""
