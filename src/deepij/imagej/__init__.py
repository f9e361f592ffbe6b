"""The ImageJ inside the Python process: runtime (start/attach, Xvfb), images, tables, macros, Java steps."""
