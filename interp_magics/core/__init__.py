"""The capture engine and what every analysis builds on.

Capture (``capturing``), the cache it fills (``cache``), hook ownership (``hooks``), the site
grammar (``sites``) and how patterns become hooks (``targets``), architecture adapters
(``adapters``), which tensor of an output is kept (``outputs``), option parsing (``options``),
byte sizes (``units``), the memory guard (``memory``), errors, the event stream (``events``) and
its typed ledger records (``records``), and the seam through which results find their widgets
(``display``). Imports torch and numpy; never IPython, widgets or Jupyter (``tests/test_layers.py``
checks it). Importing this package itself imports nothing.
"""
