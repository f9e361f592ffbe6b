"""Running a network on images: tiling planner (pure numpy), memory model, framework backends.

Never imports ``deepij.imagej``; framework imports happen only when a backend is loaded.
"""
