"""lrrd's built-in plugins, one module each, found by ``twisted.plugin.getPlugins``.

Each module holds one module-level object providing ``twisted.plugin.IPlugin`` and one of
``lrrd.plugins.interfaces``; modules import only ``lrrd.plugins``.
"""
